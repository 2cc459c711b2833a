"""Atomic file writes, so an interrupted or failed command never leaves half a file behind."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shared.errors import PortfolioError


class OutputError(PortfolioError):
    """A file cannot be written: the folder is read-only, the disk is full, the path is a folder."""


def _mode_for(path: Path) -> int:
    """The permissions the written file gets: the replaced file's, else what the umask allows (not mkstemp's 0600)."""
    if path.exists():
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds.

    The temporary name keeps the real suffix, so writers that infer a format from it (matplotlib, pandas)
    still work. A write that fails for the file system's reasons (read-only, full, not a folder) is an
    `OutputError` naming the path, and leaves the old file as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as error:
        raise _output_error(path, error) from error
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, _mode_for(path))
        os.replace(temporary_path, path)
    except OSError as error:
        raise _output_error(path, error) from error
    finally:
        temporary_path.unlink(missing_ok=True)


def _output_error(path: Path, error: OSError) -> OutputError:
    return OutputError(
        f"cannot write {path}: {error.strerror or error}.",
        "choose a writable place with free space (a folder you own), or free some disk space.",
    )


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented JSON, atomically (strict JSON: a NaN becomes null)."""
    return write_text(
        path, json.dumps(finite_values(data), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    )


def finite_values(value: Any) -> Any:
    """`value` with every non-finite float as None, since JSON has no NaN."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {key: finite_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_values(item) for item in value]
    return value


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
