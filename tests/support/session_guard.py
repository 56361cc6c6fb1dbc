"""A `session.messages` list that fails the test when anything but medchat/app/session.py changes it."""

from __future__ import annotations

import sys
from pathlib import Path

SESSION_FILE = Path("medchat", "app", "session.py")


class SessionOnlyList(list):
    def _check(self) -> None:
        caller = Path(sys._getframe(2).f_code.co_filename)
        if caller.parts[-3:] != SESSION_FILE.parts:
            raise AssertionError(f"session.messages changed from {caller}")


def _guarded(name: str):
    method = getattr(list, name)

    def wrapper(self, *args, **kwargs):
        self._check()
        return method(self, *args, **kwargs)

    return wrapper


for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__"):
    setattr(SessionOnlyList, _name, _guarded(_name))


def guard(session) -> None:
    """From now on, only the session itself may change `session.messages` (until it replaces the list),
    and nothing may call `session.undo` (a front end once undid a failed turn with it)."""
    session.messages = SessionOnlyList(session.messages)

    def undo():
        raise AssertionError("session.undo called")

    session.undo = undo
