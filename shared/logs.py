"""Logging helpers: quieting chatty libraries for a block, and routing Lightning's records through Hydra's."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """The named loggers at `level` (WARNING) for the block, then as they were: for chatty libraries."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.setLevel(previous)


def route_library_logs() -> None:
    """Lightning gives itself a console handler when imported before logging is set up; send its
    records through Hydra's handlers instead, so each line appears once and reaches the run's log."""
    import lightning  # noqa: F401  (installs those handlers now, so they can be removed)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(existing, _DropAdvertisements) for existing in rank_zero.filters):
        rank_zero.addFilter(_DropAdvertisements())


class _DropAdvertisements(logging.Filter):
    """Lightning's 'Tip: try our cloud service' lines are not part of a run's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)
