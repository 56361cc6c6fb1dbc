"""Render one stored conversation as Markdown (for people) or JSON (for tools)."""

from __future__ import annotations

import json

EXPORT_VERSION = 1
_ROLE_NAMES = {"user": "You", "assistant": "medchat", "system": "System", "tool": "Tool"}


def to_json(conversation: dict, messages: list[dict]) -> str:
    data = {
        "format": "medchat-conversation",
        "version": EXPORT_VERSION,
        "conversation": conversation,
        "messages": messages,
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _sources_lines(sources) -> list[str]:
    lines = []
    for i, src in enumerate(sources or [], 1):
        if isinstance(src, dict):
            label = src.get("title") or src.get("source") or src.get("path") or src.get("id") or ""
            lines.append(f"{i}. {label}".rstrip())
        else:
            lines.append(f"{i}. {src}")
    return lines


def to_markdown(conversation: dict, messages: list[dict]) -> str:
    title = conversation.get("title") or f"Conversation {conversation['id']}"
    out = [f"# {title}", "", f"- Conversation: {conversation['id']}", f"- Started: {conversation['created']}"]
    if conversation.get("profile"):
        out.append(f"- Profile: {conversation['profile']}")
    if conversation.get("system_prompt"):
        out += ["", "System prompt:", "", *(f"> {ln}" for ln in conversation["system_prompt"].splitlines())]
    for msg in messages:
        heading = f"## {_ROLE_NAMES.get(msg['role'], msg['role'])} · {msg['created']}"
        if msg.get("profile"):
            heading += f" · {msg['profile']}"
        if msg.get("status") and msg["status"] != "complete":
            heading += f" ({msg['status']})"
        out += ["", heading, "", msg.get("content") or "_(empty)_"]
        triage = msg.get("triage")
        if isinstance(triage, dict) and triage.get("guidance"):
            out += ["", f"> **Emergency guidance shown:** {triage['guidance']}"]
        sources = _sources_lines(msg.get("sources"))
        if sources:
            out += ["", "Sources:", "", *sources]
    return "\n".join(out) + "\n"


def render(conversation: dict, messages: list[dict], fmt: str) -> str:
    return to_json(conversation, messages) if fmt == "json" else to_markdown(conversation, messages)
