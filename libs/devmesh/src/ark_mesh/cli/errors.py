"""Exit codes of ``ark-mesh`` (stable: scripts and CI branch on them) and the error they carry."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CliError", "Exit"]


class Exit(IntEnum):
    """What an ``ark-mesh`` exit status means. Never renumber: scripts depend on these."""

    OK = 0
    """The command did what it was asked; for ``query``, the query ended ``done``."""
    QUERY_ERROR = 1
    """The query ended in phase ``error`` (not a timeout)."""
    USAGE = 2
    """Invalid arguments (argparse's own status)."""
    CANCELED = 3
    """The query ended ``canceled``."""
    TIMED_OUT = 4
    """The query timed out (reason ``TimedOutInQueue``/``TimedOutInExecution``), or did not end
    within ``--timeout``."""
    UNREACHABLE = 5
    """No mesh to talk to: no running ``ark-mesh dev`` and no URL given, or it did not answer."""
    REJECTED = 6
    """The mesh refused the request (unknown query, invalid body, not allowed)."""
    INTERRUPTED = 130
    """Ctrl-C."""


class CliError(Exception):
    """A failure the user can act on: the message names the problem, ``code`` is the exit."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code
