"""The shared core: everything the projects would otherwise each write again.

Command dispatch (`cli`), config composition (`config`), data-file resolution (`data`),
training and evaluation flows (`train`, `evaluate`, `predict`), run directories (`runs`),
and reports (`reports`). It names no project: a project hands the core a `Project`.
"""
