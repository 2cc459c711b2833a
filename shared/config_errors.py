"""Hydra's and OmegaConf's complaints about a command line, said in the error/fix form of every other refusal.

Hydra reports a bad override itself (`model=nope`, `model.widht=3`) and exits 1 before any command runs, in its own
words, some of them misleading here ("To append to your config use +model.widht=3": a new key nothing reads). The
command line holds stderr while Hydra composes (`HeldStream`); if Hydra gives up, `explain` rewrites what it said.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

from shared.errors import UsageError

HYDRA_FULL_ERROR_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
# `model=nope`: the group path, the option, and the options there are (one per line, tab-indented)
MISSING_OPTION = re.compile(
    r"Could not (?:find|load) '([\w/.-]+)/([^']+)'.*?Available options in '[^']+':\n((?:\t[^\n]+\n?)+)", re.S
)
# `evaluate model=cnn`: a group this command does not compose (it reads the run's own config)
FOREIGN_GROUP = re.compile(r"Could not override '([^']+)'\. No match in the defaults list")
# `model.widht=3`: a key the config does not have
UNKNOWN_KEY = re.compile(
    r"Could not override '([^']+)'\.\nTo append to your config use .*\nKey '[^']+' is not in struct"
)


class HeldStream:
    """A stream that keeps what is written until `release`, then passes everything through.

    Hydra writes its composition error to `sys.stderr` and exits; with this in its place, the command line can say
    it better. Once the command starts, it is released, so logs and progress bars flow as before."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.held: list[str] = []
        self.holding = True

    def write(self, text: str) -> int:
        if self.holding:
            self.held.append(text)
            return len(text)
        return self.stream.write(text)

    def release(self) -> str:
        """Stop holding; return what was held (not yet written anywhere)."""
        self.holding = False
        held, self.held = "".join(self.held), []
        return held

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding: the real stream's
        return getattr(self.stream, name)


def explain(said: str, project: str, command: str) -> UsageError:
    """What Hydra said about a command line that did not compose, as the error the command line shows."""
    text = said.replace(HYDRA_FULL_ERROR_HINT, "").strip()
    help_line = f"python -m projects.{project} {command} --help lists its groups and settings"
    if missing := MISSING_OPTION.search(text):
        group, option = missing.group(1).rsplit("/", 1)[-1], missing.group(2)
        options = ", ".join(line.strip() for line in missing.group(3).splitlines() if line.strip())
        return UsageError(f"{group}={option}: {project} has no {group} '{option}'.", f"use one of: {options}.")
    if foreign := FOREIGN_GROUP.search(text):
        group = foreign.group(1)
        return UsageError(
            f"{command} takes no {group}= choice: a run keeps the {group} it was trained with.",
            f"pass run=<a run folder> trained with the {group} you want; {help_line}.",
        )
    if unknown := UNKNOWN_KEY.search(text):
        return UsageError(
            f"{unknown.group(1)} is not a setting of {project} {command}.",
            f"check its spelling; {help_line}, and --cfg job prints every key with its value.",
        )
    if "override_grammar" in text or "no viable alternative" in text or "mismatched input" in text:
        problem = " ".join(line for line in text.splitlines() if "hydra.cc/docs" not in line)
        return UsageError(
            f"an override could not be read ({problem}).",
            "write key=value; quote values with brackets, commas or spaces, e.g. 'model.widths=[32,64,128]'.",
        )
    first, *rest = text.splitlines() or ["the configuration did not compose."]
    details = "".join(f"\n  {line}" for line in rest if line.strip() and not line.startswith(("\t", "Config search")))
    return UsageError(f"{first}{details}", f"{help_line}.")


def explain_config_value(error: Exception, project: str, command: str) -> UsageError:
    """An OmegaConf error met while the command reads its config (a bad `${...}`, a value of the wrong type)."""
    problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    key = getattr(error, "full_key", None)
    where = f" {key}:" if key else ""
    return UsageError(
        f"the configuration has a value that cannot be read:{where} {problem}.",
        f"correct it on the command line; python -m projects.{project} {command} --cfg job shows every key.",
    )
