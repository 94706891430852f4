"""Errors that reach the user as one line and exit status 2."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix, and the CLI exits with status 2."""


class DivergedError(RuntimeError):
    """A training loss became non-finite (NaN or inf)."""
