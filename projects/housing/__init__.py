"""California housing: predict a district's median house value from the 1990 census (Géron's version).

Run `python -m projects.housing --help`.
"""
