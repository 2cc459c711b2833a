"""`monitor`: whether new inputs still look like the training data a run saw, and where they differ.

`features` is what a project gives (its inputs as named numbers, categories and an embedding), `reference` what a run
keeps of its training inputs at train time, `drift` the tests, `report` the files, `command` the flow.
"""
