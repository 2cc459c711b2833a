"""The shared core: everything the projects would otherwise each write again.

Command dispatch (`cli`), config composition (`config`), the project contract (`project`) and registry
(`registry`), declared metrics (`metrics`) and model capabilities (`capabilities`), data-file resolution
(`data`), the training, evaluation, prediction and comparison flows, the run object (`runs`), shared
classification and image code, and reports. It names no project: a project hands the core a `Project`.
See docs/ARCHITECTURE.md.
"""
