"""User-facing errors: the CLI prints the message (no traceback) and exits non-zero."""

from __future__ import annotations

import re

# torch's DataLoader re-raises a worker's exception as `type(err)(msg)`, msg = "Caught X in DataLoader
# worker process N.\nOriginal Traceback ...\n<module>.X: <message>" (torch/_utils.py ExceptionWrapper).
_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback", re.S)


class VidgenError(Exception):
    """An error caused by the user's input (config, paths, data), not by a bug.

    The message must name the file and/or field at fault and say how to fix it. One raised in a
    DataLoader worker reaches the main process with its own message, not the worker's traceback.
    """

    exit_code = 2

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if _WORKER.match(text):
            cls = type(self)
            head, sep, original = text.rpartition(f"{cls.__module__}.{cls.__qualname__}: ")
            if sep:
                message = original.rstrip("\n")
        super().__init__(message)


class DataError(VidgenError):
    """A shard or annotation on disk is invalid; the message names the file and field."""


class ConfigError(VidgenError):
    """A config value is invalid or a config group option does not exist."""


def require_choice(key: str, value, choices) -> None:
    """One ``ConfigError`` for a config value outside its choices: ``key=value is not valid; use one of ...``."""
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; use one of {', '.join(choices)}")
