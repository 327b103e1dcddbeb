"""User-facing errors: the CLI prints the message (no traceback) and exits non-zero."""

from __future__ import annotations


class VidgenError(Exception):
    """An error caused by the user's input (config, paths, data), not by a bug.

    The message must name the file and/or field at fault and say how to fix it.
    """

    exit_code = 2


class DataError(VidgenError):
    """A shard or annotation on disk is invalid; the message names the file and field."""


class ConfigError(VidgenError):
    """A config value is invalid or a config group option does not exist."""
