"""Errors that reach the user as one line and exit status 2, and warnings that reach them as one line."""

import sys


class UserError(Exception):
    """Bad input: the message names the problem and the fix, and the CLI exits with status 2."""


class DivergedError(RuntimeError):
    """A training loss became non-finite (NaN or inf)."""


def warn(message: str) -> None:
    """Prints ``warning: <message>`` as one line on stderr; the run goes on."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
