"""Errors a user can act on: shown as a message and a fix, never as a traceback."""

from __future__ import annotations


class PortfolioError(Exception):
    """A problem the user can fix. `cli` prints it and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return self.problem if not self.fix else f"{self.problem}\n  fix: {self.fix}"


class DataError(PortfolioError):
    """Data missing, corrupt or not what the project expects."""


class UsageError(PortfolioError):
    """The command line asks for something that cannot work."""

    exit_code = 2


class RunNotFoundError(PortfolioError):
    """No usable run directory for `evaluate` or `predict`."""


class RecordError(ValueError):
    """One input of `predict` (a file, a line, a JSON record) cannot be used: its own row carries the message,
    and the other inputs are still predicted. Raised by a project's `parse_record`."""


class Interrupted(Exception):
    """Training stopped by a signal (Ctrl-C, SIGTERM from a scheduler). The run stays resumable from its last
    checkpoint; the command exits with 128 + the signal's number (130, 143), as shells report them."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"signal {signal_number}")
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number
