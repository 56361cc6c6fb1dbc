"""User-facing errors: one clear line naming the problem and the fix, never a traceback.

Exit codes of `medchat`: 0 success; 1 a runtime failure (a missing file, an unknown profile, a busy
database...); 2 a usage error (the command line itself is malformed: argparse's errors and UsageError);
130 interrupted with Ctrl-C.
"""

import argparse

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def one_line(text) -> str:
    """Text folded onto one line: messages often embed a library's multi-line error (YAML, pandas)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class UserError(Exception):
    """A problem the user can fix. The CLI prints `medchat: <message>` and exits with `code`.
    The message is always one line, whatever library text was put into it."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME):
        super().__init__(one_line(message))
        self.code = code


def error_line(exc: BaseException) -> str:
    """How a front end shows a failed command or reply: a UserError's own line, else the type and message."""
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


class UsageError(UserError):
    """The command line is malformed (wrong arguments, a value of the wrong form): exit code 2."""

    def __init__(self, message: str):
        super().__init__(message, code=EXIT_USAGE)


def positive_int(raw: str) -> int:
    """argparse type for counts such as --limit: a bad value is a usage error (exit 2) before any work."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{raw}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value
