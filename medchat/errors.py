"""User-facing errors: one clear line naming the problem and the fix, never a traceback."""


class UserError(Exception):
    """A problem the user can fix. The CLI prints `medchat: <message>` and exits with `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code
