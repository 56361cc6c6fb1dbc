"""Turning raw rows into `Example`s: alpaca, sharegpt (from/value or role/content), ChatDoctor-style,
ranking pairs and plain text, with format auto-detection for direct paths.

Everything becomes `messages` [{role: user|assistant, content}] plus a separate `system`. Validation
(in `check_messages`) raises `BadRow(reason)`; the caller adds the file and row number.

Auto-detection (direct paths only; registry entries follow dataset_info.json exactly):
  conversations/messages list          -> sharegpt (tags detected from the first message's keys)
  instruction/output (+input)          -> alpaca; when every row has the same instruction and the
                                          patient text is in `input` (ChatDoctor style), the shared
                                          instruction becomes the system prompt and `input` the user turn
  prompt/chosen/rejected               -> ranking (alpaca-style)
  question/answer, input/output        -> alpaca-like single turn
  text                                 -> plain text (pre-training)
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                "bot": "assistant", "chatgpt": "assistant", "doctor": "assistant", "patient": "user",
                "system": "system", "observation": "user", "tool": "user", "function_call": "assistant",
                "function": "assistant"}


class BadRow(Exception):
    """A row that cannot be used; the message says what is wrong with it."""


@dataclass
class Example:
    messages: list[dict] = field(default_factory=list)  # user/assistant turns, no system
    system: str = ""
    text: str = ""  # pre-training text
    chosen: str = ""  # ranking: preferred reply to `messages` (which then end with a user turn)
    rejected: str = ""
    source: str = ""  # file the row came from
    row: int = 0  # row number in that file (see loaders)

    def chat(self) -> list[dict]:
        """The conversation with the system prompt first, as chat templates expect."""
        return ([{"role": "system", "content": self.system}] if self.system else []) + list(self.messages)

    @property
    def where(self) -> str:
        return f"{self.source} row {self.row}"


def _text(value, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise BadRow(f"'{what}' must be text, got {type(value).__name__}")
    return value


def check_messages(messages: list[dict], need_reply: bool = True) -> None:
    """user, assistant, user, ... alternating, non-empty; ends with an assistant reply when need_reply."""
    if not messages:
        raise BadRow("no conversation turns")
    for i, m in enumerate(messages):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise BadRow(f"wrong role order: turn {i + 1} is '{m['role']}' but should be '{want}' "
                         "(turns must alternate user/assistant, starting with user)")
        if not m["content"].strip():
            raise BadRow(f"empty {'reply' if want == 'assistant' else 'user message'} in turn {i + 1}")
    if need_reply and messages[-1]["role"] != "assistant":
        raise BadRow("the conversation does not end with an assistant reply")
    if not need_reply and messages[-1]["role"] != "user":
        raise BadRow("a ranking prompt must end with a user turn")


def _history(value) -> list[dict]:
    out = []
    for pair in value or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise BadRow("'history' must be a list of [user, assistant] pairs")
        out += [{"role": "user", "content": _text(pair[0], "history")},
                {"role": "assistant", "content": _text(pair[1], "history")}]
    return out


def from_alpaca(rec: dict, spec, ranking: bool, chatdoctor: bool = False) -> Example:
    col = spec.column
    prompt_col, query_col = col("prompt"), col("query")
    for needed in [prompt_col] + ([col("chosen"), col("rejected")] if ranking else [col("response")]):
        if needed and needed not in rec:
            raise BadRow(f"missing field '{needed}'")
    prompt = _text(rec.get(prompt_col), prompt_col)
    query = _text(rec.get(query_col), query_col) if query_col else ""
    system = _text(rec.get(col("system")), "system") if col("system") else ""
    if chatdoctor:
        system, user = system or prompt, query
    else:
        user = "\n".join(p for p in (prompt, query) if p.strip())
    messages = _history(rec.get(col("history"))) if col("history") else []
    messages.append({"role": "user", "content": user})
    ex = Example(messages=messages, system=system)
    if ranking:
        ex.chosen = _text(rec.get(col("chosen")), "chosen")
        ex.rejected = _text(rec.get(col("rejected")), "rejected")
        _check_pair(ex)
        check_messages(messages, need_reply=False)
    else:
        response = rec.get(col("response"))
        if isinstance(response, list):  # LLaMA-Factory's old ranking layout: [chosen, rejected]
            response = response[0] if response else ""
        messages.append({"role": "assistant", "content": _text(response, col("response"))})
        check_messages(messages)
    return ex


def _role(message: dict, spec, role_tag: str) -> str:
    raw = message.get(role_tag)
    tags = {spec.tag("user_tag"): "user", spec.tag("assistant_tag"): "assistant",
            spec.tag("system_tag"): "system", spec.tag("observation_tag"): "user",
            spec.tag("function_tag"): "assistant"}
    role = tags.get(raw) or ROLE_ALIASES.get(str(raw).lower())
    if role is None:
        raise BadRow(f"unknown role '{raw}' (expected {spec.tag('user_tag')} or {spec.tag('assistant_tag')})")
    return role


def _message(value, spec, role_tag: str, content_tag: str, what: str) -> dict:
    if not isinstance(value, dict) or role_tag not in value or content_tag not in value:
        raise BadRow(f"'{what}' entries need '{role_tag}' and '{content_tag}'")
    return {"role": _role(value, spec, role_tag), "content": _text(value[content_tag], content_tag)}


def from_sharegpt(rec: dict, spec, ranking: bool) -> Example:
    msgs_col = spec.column("messages")
    raw = rec.get(msgs_col)
    if raw is None:
        raise BadRow(f"missing field '{msgs_col}'")
    if not isinstance(raw, list):
        raise BadRow(f"'{msgs_col}' must be a list of messages")
    role_tag, content_tag = spec.tag("role_tag"), spec.tag("content_tag")
    messages = [_message(m, spec, role_tag, content_tag, msgs_col) for m in raw]
    system = _text(rec.get(spec.column("system")), "system") if spec.column("system") else ""
    if messages and messages[0]["role"] == "system":
        system = system or messages[0]["content"]
        messages = messages[1:]
    ex = Example(messages=messages, system=system)
    if ranking:
        for key in ("chosen", "rejected"):
            name = spec.column(key) or key
            if name not in rec:
                raise BadRow(f"missing field '{name}'")
            value = rec[name]
            setattr(ex, key, _message(value, spec, role_tag, content_tag, name)["content"]
                    if isinstance(value, dict) else _text(value, name))
        _check_pair(ex)
        check_messages(messages, need_reply=False)
    else:
        check_messages(messages)
    return ex


def _check_pair(ex: Example) -> None:
    if not ex.chosen.strip():
        raise BadRow("empty 'chosen' reply")
    if not ex.rejected.strip():
        raise BadRow("empty 'rejected' reply")


def from_text(rec: dict, column: str = "text") -> Example:
    if column not in rec:
        raise BadRow(f"missing field '{column}'")
    text = _text(rec[column], column)
    if not text.strip():
        raise BadRow("empty text")
    return Example(text=text)


def chat_to_text(ex: Example) -> Example:
    """Pre-training on chat data: the conversation's texts, one paragraph each."""
    parts = [ex.system] + [m["content"] for m in ex.messages] + [ex.chosen]
    return Example(text="\n\n".join(p for p in parts if p and p.strip()), source=ex.source, row=ex.row)


def detect(records: list[dict]) -> tuple[str, dict]:
    """(formatting, overrides) for a direct file: sharegpt | alpaca | ranking | chatdoctor | text."""
    if not records:
        return "text", {}
    first = records[0] if isinstance(records[0], dict) else {}
    keys = set(first)
    for col in ("conversations", "messages", "conversation", "dialog"):
        if col in keys and isinstance(first[col], list):
            msg = next((m for m in first[col] if isinstance(m, dict)), {})
            tags = {"role_tag": "role", "content_tag": "content"} if "role" in msg else {}
            ranking = "chosen" in keys and "rejected" in keys
            cols = {"messages": col, "system": "system" if "system" in keys else None}
            if ranking:
                cols.update(chosen="chosen", rejected="rejected")
            return ("sharegpt_ranking" if ranking else "sharegpt"), {"columns": cols, "tags": tags}
    if {"chosen", "rejected"} <= keys:
        prompt = next((k for k in ("prompt", "instruction", "question") if k in keys), "prompt")
        return "ranking", {"columns": {"prompt": prompt, "query": "input" if "input" in keys else None,
                                       "chosen": "chosen", "rejected": "rejected", "system": "system",
                                       "history": "history" if "history" in keys else None}}
    if {"instruction", "output"} <= keys:
        cols = {"prompt": "instruction", "query": "input", "response": "output",
                "system": "system" if "system" in keys else None, "history": "history" if "history" in keys else None}
        instructions = {repr(r.get("instruction")) for r in records if isinstance(r, dict)}  # may be unhashable
        inputs = [r.get("input") for r in records if isinstance(r, dict)]
        chatdoctor = (len(records) > 1 and len(instructions) == 1 and all(isinstance(i, str) and i.strip() for i in inputs))
        return ("chatdoctor" if chatdoctor else "alpaca"), {"columns": cols}
    for q, a in (("question", "answer"), ("input", "output"), ("query", "response"), ("prompt", "response"),
                 ("prompt", "completion")):
        if {q, a} <= keys:
            return "alpaca", {"columns": {"prompt": q, "query": None, "response": a,
                                          "system": "system" if "system" in keys else None}}
    if "text" in keys or "content" in keys:
        return "text", {"columns": {"prompt": "text" if "text" in keys else "content"}}
    return "unknown", {}
