"""Provenance: what a run, an export or a server records so that a number can be reproduced (library versions,
Python, platform, the git commit of the code)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

LIBRARIES = (
    "torch",
    "torchvision",
    "lightning",
    "hydra-core",
    "scikit-learn",
    "pandas",
    "numpy",
    "torchmetrics",
)


def git_commit() -> str | None:
    """The commit of the code that ran, with '+dirty' when the tree had changes; None outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Library versions, Python and platform: what a reader needs to reproduce a number."""
    return {"python": platform.python_version(), "platform": platform.platform(), **library_versions(LIBRARIES)}


def library_versions(libraries: tuple[str, ...]) -> dict[str, str | None]:
    """Each installed library's version, None for one that is not installed."""
    versions: dict[str, str | None] = {}
    for library in libraries:
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = None
    return versions
