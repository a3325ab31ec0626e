"""lmjepa's own error classes: the only errors the command line turns into a one-line message
(exit 2). Anything else is a bug and shows its traceback."""

from __future__ import annotations


class LmjepaError(Exception):
    """Base of the errors a user can fix (bad data, bad config, missing files or packages)."""

    def __str__(self) -> str:  # never the quoted repr KeyError would print
        return str(self.args[0]) if self.args else ""


class ConfigError(LmjepaError, KeyError, ValueError):
    """A bad configuration: unknown key, bad value, unknown choice. The message names the key
    (and the file when there is one), the value and what is allowed. A KeyError and a ValueError
    too, so code written against those keeps working."""


class DataError(LmjepaError, ValueError):
    """Bad or missing data. The message names the file (and line, when there is one)."""


class RunFolderError(LmjepaError, ValueError):
    """A run folder that cannot be used as asked (it holds another config, or is unfinished)."""
