"""`/forget`: delete the current conversation from the history for good (kept apart: commands.py is full)."""

from __future__ import annotations

from medchat.app.commands import Result, command


@command("forget", "/forget", "delete the current conversation from /history for good and start a new one")
def _forget(session, args, ui):
    cid = session.conversation_id
    if session.history is not None and cid is not None:
        session.history.delete_conversation(cid)  # secure_delete: the text is overwritten, not kept
    session.clear()
    text = f"conversation {cid} deleted from the history" if cid is not None else "nothing was saved; new conversation"
    return Result("action", text, action="clear")
