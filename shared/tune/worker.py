"""One of the processes `tune workers=K` starts: `python -m shared.tune.worker <module:Class> <config dir> tune ...`.

The project is named by its class (a project outside `projects/`, the one in `tests/`, has no `python -m` of its own)
and its config folder, so the worker composes exactly what the command that started it did.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from shared.cli import run
from shared.project import Project


def main(arguments: list[str]) -> int:
    target, config_dir, *command = arguments
    module, _, name = target.partition(":")
    project_class = getattr(importlib.import_module(module), name)
    if not (isinstance(project_class, type) and issubclass(project_class, Project)):
        raise SystemExit(f"{target} is not a Project class")
    project = project_class()
    project.config_dir = Path(config_dir)  # type: ignore[misc]  # the folder the starting command used
    return run(project, command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
