"""ChatSession: one conversation turn = triage -> retrieval -> prompt -> stream -> history.

Both front ends (TUI, REPL) and `medchat ask` drive a session; it owns the conversation state that
slash commands change (/use, /system, /set, /kb, /undo, /retry, /clear, /load). Front ends read
`messages` but never change them: a failed turn is settled here (see `send`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from medchat.app.context import format_context
from medchat.core.errors import UserError
from medchat.core.settings import DOCTOR_SYSTEM_PROMPT, GenerationSettings

PARTIAL_EVERY = 8  # chunks between writes of a streaming reply to history


@dataclass
class TurnEvent:
    kind: str  # triage | sources | chunk | done
    text: str = ""
    triage: object = None
    sources: list = field(default_factory=list)
    stats: object = None
    message_id: int | None = None
    key_facts: list = field(default_factory=list)  # kb.key_facts.KeyFact, on "done" only


class ChatSession:
    def __init__(self, engine, history=None, kb: str | None = "default",
                 settings: GenerationSettings | None = None, system_prompt: str | None = None,
                 retriever: Callable | None = None, triage: Callable | None = None,
                 key_facts: bool = True, embedder=None, lead: bool = True):
        """`key_facts`: quote the passages' sentences closest to each question (AppConfig.key_facts).
        They are scored with `embedder`, by default the KB's own; a custom `retriever` without an
        `embedder` gives none. `lead`: a reply the KB covers starts with its best sentence
        (AppConfig.kb_lead, see `lead_line`)."""
        self.engine = engine
        self.history = history
        self.kb_name = kb  # None = retrieval off
        self._retriever = retriever
        self._triage = triage
        self.key_facts = key_facts
        self.lead = lead
        self._embedder = embedder
        self._system_override = system_prompt
        self._settings_override: dict = {}
        self.base_settings = settings or GenerationSettings()
        self.messages: list[dict] = []  # user/assistant only; each may carry "id"
        self.conversation_id: int | None = None
        self._failed: tuple | None = None  # (history id, text, conversation) of the last failed message
        self.last_sources: list = []
        self.last_triage = None
        self.last_key_facts: list = []
        self.last_lead = ""

    # --- state -----------------------------------------------------------------------------
    @property
    def profile(self):
        return self.engine.profile

    @property
    def system_prompt(self) -> str:
        return self._system_override or self.profile.system_prompt or DOCTOR_SYSTEM_PROMPT

    @property
    def settings(self) -> GenerationSettings:
        merged = {**self.base_settings.to_dict(), **(self.profile.generation or {}), **self._settings_override}
        return GenerationSettings.from_dict(merged)

    @property
    def disclaimer(self) -> str:
        """The start-up line, with the emergency number of the triager's region."""
        from medchat.app.triage import disclaimer

        return disclaimer("en", getattr(self._triage, "region", None))

    def set_system(self, text: str) -> None:
        self._system_override = text.strip() or None

    def set(self, name: str, value) -> GenerationSettings:
        new = self.settings.with_value(name, value)  # validates, raises UserError
        self._settings_override[name] = getattr(new, name)
        return new

    def use(self, name: str):
        profile = self.engine.use(name)
        if profile.kb and self.kb_name is not None:
            self.kb_name = None if profile.kb == "none" else profile.kb
        return profile

    def set_kb(self, name: str | None) -> None:
        if name is not None and name != "default":
            import kb as kbmod

            if name not in {k["name"] for k in kbmod.list_kbs()}:
                raise UserError(f"unknown knowledge base '{name}'; see `medchat kb list` or build one with `medchat kb build`")
        self.kb_name = name

    # --- pieces of a turn ------------------------------------------------------------------
    def check_triage(self, text: str, recent: list[str] | None = None):
        """The newest message judged with the recent user turns; None when nothing is flagged.

        `triage` is a conversation-level triager (medchat.app.triage.Triager) or a plain function of the text.
        """
        if self._triage is None:
            from medchat.app.triage import load_triager

            self._triage = load_triager()
        assess_turn = getattr(self._triage, "assess_turn", None)
        if assess_turn is None:
            result = self._triage(text)
        else:
            if recent is None:
                recent = [m["content"] for m in self.messages if m["role"] == "user"]
            result = assess_turn(text, recent)
        return result if result is not None and getattr(result, "emergency", True) else None

    def retrieve(self, text: str) -> list:
        if self.kb_name is None:
            return []
        import kb as kbmod

        query = self._turn_query(text)
        if self._retriever is not None:
            return list(self._retriever(query))
        return kbmod.retrieve(query, kb=self.kb_name)

    def _turn_query(self, text: str) -> str:
        """What the turn searches with (kb.turn_query): follow-ups ("and for children?") need the previous
        question; the newest user message is already in self.messages, so it is not counted twice."""
        import kb as kbmod

        users = [m["content"] for m in self.messages if m["role"] == "user"]
        if users and users[-1] == text:
            users.pop()
        return kbmod.turn_query(users, text)

    def rank_key_facts(self, text: str, sources: list) -> list:
        """The sentences of `sources` closest to the question `text`, verbatim (kb.key_facts.ranked):
        the prompt lists them under the passages, and `shown` picks the block quoted after the reply.
        Computed whether or not the block is shown, so the prompt does not depend on a display setting."""
        if not sources:
            return []
        model = self._embedder
        if model is None:
            if self._retriever is not None or self.kb_name is None:
                return []
            import kb as kbmod

            model = kbmod.embedder_for(self.kb_name)
        from kb.key_facts import ranked

        try:
            return ranked(text, sources, model, query=self._turn_query(text))
        except Exception:  # noqa: BLE001 - the lines are a help to the model and an extra to the reader, never a failed turn
            return []

    def build_messages(self, sources: list, key_lines=()) -> list[dict]:
        """System + past turns verbatim + the newest user turn with the KB context (and its key lines) attached.

        Context goes only on the newest turn, so the rendered prefix of earlier turns stays the same
        from turn to turn and the engine can reuse its KV cache.
        """
        *earlier, last = self.messages
        text = last["content"]
        if sources:
            context = format_context(sources, getattr(self.engine, "tokenizer", None), key_lines)
            user = f"{context}\n\nQuestion: {text}"
        else:
            user = text
        past = [{"role": m["role"], "content": m["content"]} for m in earlier]
        return [{"role": "system", "content": self.system_prompt}, *past, {"role": "user", "content": user}]

    def context_tokens(self) -> int:
        """Prompt tokens the conversation so far takes (system prompt + turns, no KB context)."""
        msgs = [{"role": "system", "content": self.system_prompt},
                *[{"role": m["role"], "content": m["content"]} for m in self.messages]]
        return int(self.engine.count_tokens(msgs))

    def _ensure_conversation(self) -> None:
        if self.history is not None and self.conversation_id is None:
            self.conversation_id = self.history.new_conversation(
                profile=self.profile.name, system_prompt=self.system_prompt)

    # --- a turn ----------------------------------------------------------------------------
    def send(self, text: str, cancel: threading.Event | None = None, queued_id: int | None = None) -> Iterator[TurnEvent]:
        """One turn. `queued_id`: the message was already committed by `queue` (typed while the model
        was loading or busy); it moves to the end of this conversation instead of being written twice.

        If the turn fails, the error propagates and the message leaves `messages` (front ends offer the
        text again) but stays in history with status 'error'; sending the same text next reuses that row."""
        text = text.strip()
        if not text:
            raise UserError("empty message; type a question")
        recent = [m["content"] for m in self.messages if m["role"] == "user"]
        self._ensure_conversation()
        user = {"role": "user", "content": text}
        failed, self._failed = self._failed, None
        if self.history is not None and queued_id is not None:
            user["id"] = self.history.move_to_end(queued_id, self.conversation_id)
        elif self.history is not None and failed is not None and failed[1:] == (text, self.conversation_id):
            user["id"] = self._resend(failed[0], text)
        elif self.history is not None:  # committed before anything that can be slow or fail
            user["id"] = self.history.add_message(self.conversation_id, "user", text)
        self.messages.append(user)
        try:
            triage = self.check_triage(text, recent)
            self.last_triage = triage
            if triage is not None and getattr(triage, "show", True):  # guidance already shown is not repeated
                yield TurnEvent("triage", text=triage.guidance, triage=triage)
            yield from self._reply(text, cancel, triage)
        except Exception:
            self._withdraw(user)
            raise

    def _withdraw(self, user: dict) -> None:
        """A failed turn: its message leaves the conversation and is kept in history, marked 'error'."""
        if self.messages and self.messages[-1] is user:
            self.messages.pop()
        if self.history is not None and user.get("id"):
            with contextlib.suppress(Exception):  # the turn's own error is the one to report
                self.history.update_message(user["id"], status="error")
                self._failed = (user["id"], user["content"], self.conversation_id)

    def _resend(self, message_id: int, text: str) -> int:
        """The failed message sent again: its row moves to the end and counts as sent."""
        try:
            message_id = self.history.move_to_end(message_id, self.conversation_id)
        except UserError:  # the row is gone (e.g. deleted from /history)
            return self.history.add_message(self.conversation_id, "user", text)
        self.history.update_message(message_id, status="complete")
        return message_id

    def queue(self, text: str) -> int | None:
        """Commit a message typed while a turn is running, before it is answered, so a crash or a
        close cannot lose it; `send(text, queued_id=...)` answers it later. None when history is off."""
        if self.history is None or not text.strip():
            return None
        self._ensure_conversation()
        return self.history.add_message(self.conversation_id, "user", text.strip())

    def _reply(self, text: str, cancel, triage) -> Iterator[TurnEvent]:
        from kb.knowledge import passage_dict

        sources = self.retrieve(text)
        self.last_sources = sources
        if sources:
            yield TurnEvent("sources", sources=sources)
        ranked = self.rank_key_facts(text, sources)
        msgs = self.build_messages(sources, ranked)
        settings = self.settings
        meta = dict(profile=self.profile.name, profile_chain=list(self.profile.chain), settings=settings.to_dict(),
                    sources=[passage_dict(p) for p in sources], triage=triage.to_dict() if triage is not None else None)
        parts, msg = [], {"role": "assistant", "content": ""}
        prefix = self._coverage_notice(text, sources)
        if prefix:
            parts.append(prefix)
            yield TurnEvent("chunk", text=prefix)
        from kb.key_facts import lead_line

        lead = self.last_lead = lead_line(ranked) if self.lead and not prefix else ""
        try:
            stream = self.engine.stream(msgs, settings, cancel, lead=lead)
            while True:
                try:
                    chunk = next(stream)
                except StopIteration as end:  # the stream's final event carries its stats
                    stats = end.value
                    break
                parts.append(chunk)
                self._save_partial(msg, parts, meta)
                yield TurnEvent("chunk", text=chunk)
        except Exception:
            # a failed reply is dropped whole: the front ends put the prompt back for another try
            if self.history is not None and msg.get("id"):
                self.history.delete_message(msg["id"])
            raise
        reply = prefix + stats.text if stats.text else "".join(parts)
        status = "cancelled" if stats.stop_reason == "cancelled" else "complete"
        msg["content"] = reply
        if self.history is not None:
            if msg.get("id"):
                self.history.update_message(msg["id"], reply, status=status, timings=stats.to_dict())
            else:
                msg["id"] = self.history.add_message(self.conversation_id, "assistant", reply, status=status,
                                                     timings=stats.to_dict(), **meta)
        self.messages.append(msg)
        from kb.key_facts import shown

        facts = self.last_key_facts = shown(ranked) if self.key_facts else []
        yield TurnEvent("done", text=reply, sources=sources, stats=stats, message_id=msg.get("id"),
                        key_facts=facts)

    def _coverage_notice(self, text: str, sources: list) -> str:
        """The fixed "not in the knowledge base" line (app/coverage.py), when the KB is searched."""
        if self.kb_name is None or self._retriever is not None:  # off, or a caller's own retriever
            return ""
        import kb as kbmod

        from medchat.app.coverage import notice

        return notice(text, sources, kbmod.vocabulary(self.kb_name))

    def _save_partial(self, msg: dict, parts: list[str], meta: dict) -> None:
        """Write the reply as it streams (status 'partial'), so a kill mid-reply keeps what was shown."""
        if self.history is None:
            return
        if not msg.get("id"):
            msg["id"] = self.history.add_message(self.conversation_id, "assistant", "".join(parts), status="partial",
                                                 **meta)
        elif len(parts) % PARTIAL_EVERY == 0:
            self.history.update_message(msg["id"], "".join(parts))

    # --- commands' helpers ------------------------------------------------------------------
    def undo(self) -> int:
        """Drop the last exchange; returns how many messages were removed."""
        removed = 0
        while self.messages:
            m = self.messages.pop()
            if self.history is not None and m.get("id"):
                self.history.delete_message(m["id"])
            removed += 1
            if m["role"] == "user":
                break
        if not removed:
            raise UserError("nothing to undo")
        return removed

    def retry(self, profile: str | None = None, cancel: threading.Event | None = None) -> Iterator[TurnEvent]:
        """Regenerate the last reply, optionally with another profile (which stays active)."""
        if not self.messages or not any(m["role"] == "user" for m in self.messages):
            raise UserError("nothing to retry: ask a question first")
        if self.messages[-1]["role"] == "assistant":
            m = self.messages.pop()
            if self.history is not None and m.get("id"):
                self.history.delete_message(m["id"])
        if profile:
            self.use(profile)
        text = self.messages[-1]["content"]
        yield from self._reply(text, cancel, self.last_triage)

    def compare(self, a: str, b: str, cancel: threading.Event | None = None) -> dict[str, str]:
        """Answer the last question with profiles a and b; the active profile is restored after."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        if not users:
            raise UserError("nothing to compare: ask a question first")
        before = self.profile.name
        history = self.messages[:]
        while history and history[-1]["role"] == "assistant":
            history.pop()
        out = {}
        try:
            for name in (a, b):
                self.engine.use(name)
                msgs = [{"role": "system", "content": self.system_prompt},
                        *[{"role": m["role"], "content": m["content"]} for m in history]]
                out[name] = "".join(self.engine.stream(msgs, self.settings, cancel))
        finally:
            self.engine.use(before)
        return out

    def clear(self) -> None:
        self.messages = []
        self.conversation_id = None
        self._failed = None
        self.last_sources = []
        self.last_key_facts = []
        self._forget_shown_guidance()

    def _forget_shown_guidance(self) -> None:
        reset = getattr(self._triage, "reset", None)
        if callable(reset):
            reset()

    def load(self, conversation_id: int) -> None:
        if self.history is None:
            raise UserError("history is off in this session")
        rows = self.history.messages(conversation_id)
        self.conversation_id = conversation_id
        self._failed = None
        self._forget_shown_guidance()
        # a message whose turn failed was never answered: history keeps it, the conversation does not
        self.messages = [{"role": r["role"], "content": r["content"], "id": r["id"], "status": r["status"]}
                         for r in rows if r["role"] in ("user", "assistant") and r["status"] != "error"]

