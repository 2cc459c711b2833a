"""The projects, found one way: every package `projects/<name>/` whose `project.py` defines a `Project` subclass.

Tests, the benchmark, `compare` and the site all ask here. Defining a `Project` subclass registers it
(`Project.__init_subclass__`), so a project outside `projects/` (the one in `tests/`) is found once imported.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from shared.errors import UsageError
from shared.project import Project

PROJECTS_DIR = Path(__file__).resolve().parents[1] / "projects"


def project_names() -> list[str]:
    """The names of the projects under `projects/`, sorted."""
    return sorted(path.parent.name for path in PROJECTS_DIR.glob("*/project.py"))


def load_project(name: str) -> Project:
    """The project called `name`: imported from `projects/<name>/project.py` unless already registered."""
    if name not in Project.registered:
        if name not in project_names():
            raise UsageError(f"no project '{name}'.", f"choose one of: {', '.join(project_names())}.")
        importlib.import_module(f"projects.{name}.project")
    if name not in Project.registered:
        raise UsageError(
            f"projects/{name}/project.py defines no Project subclass with name = '{name}'.",
            "give the project's Project subclass the class attribute name.",
        )
    return Project.registered[name]()


def all_projects() -> list[Project]:
    """Every project under `projects/`."""
    return [load_project(name) for name in project_names()]
