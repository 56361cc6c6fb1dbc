"""The medchat Textual app: conversation pane, input, status bar, sources panel and screens.

All model work (loading, replies, /retry, /compare, /use) runs in worker threads and reports back
with `call_from_thread`, so the UI never blocks. Input that arrives while the model loads or a
reply is being written waits in a queue and is sent, in order, when the app is free.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from rich.table import Table
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer

from medchat.app.commands import REGISTRY, Result, chain_text, classify
from medchat.core.errors import UserError, error_line
from medchat.app.tui.screens.help_screen import HelpScreen
from medchat.app.tui.screens.history_browser import HistoryBrowser
from medchat.app.tui.screens.profile_picker import ProfilePicker
from medchat.app.tui.widgets.assistant_message import AssistantMessage
from medchat.app.tui.widgets.chat_input import ChatInput
from medchat.app.tui.widgets.compare_view import CompareView
from medchat.app.tui.widgets.completion_hint import CompletionHint
from medchat.app.tui.widgets.conversation import Conversation
from medchat.app.tui.widgets.disclaimer_bar import DisclaimerBar
from medchat.app.tui.widgets.key_facts import KeyFacts
from medchat.app.tui.widgets.notice import Notice
from medchat.app.tui.widgets.sources_panel import SourcesPanel
from medchat.app.tui.widgets.status_bar import StatusBar
from medchat.app.tui.widgets.triage_notice import TriageNotice
from medchat.app.tui.widgets.user_message import UserMessage


class MedchatApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "medchat"
    ENABLE_COMMAND_PALETTE = False  # Ctrl+P is the profile picker
    BINDINGS = [
        Binding("escape", "cancel", "stop reply", show=False),
        Binding("ctrl+p", "profiles", "profiles"),
        Binding("ctrl+r", "history", "history"),
        Binding("ctrl+s", "toggle_sources", "sources"),
        Binding("f1", "help", "help"),
        Binding("ctrl+q", "quit", "quit"),
    ]

    def __init__(self, session=None, loader: Callable | None = None, loading_label: str = "loading model…",
                 disclaimer: str | None = None, notices: list[str] | None = None, history=None):
        """Pass a ready `session`, or a `loader` that builds one (called in a worker thread).
        `notices` are shown when the session is ready (the loader may still add to the list)."""
        super().__init__()
        if disclaimer is None:
            from medchat.app.triage import disclaimer as default_disclaimer

            disclaimer = default_disclaimer()
        self.disclaimer = disclaimer
        self.session = session
        self.history = history  # where messages typed before the session is ready are committed at once
        self._loader = loader
        self._loading_label = loading_label
        self._start_notices = notices if notices is not None else []
        self._queue: deque[tuple[str, str, object, int | None]] = deque()  # kind, body, widget, committed id
        self._pending_conversation: int | None = None  # holds messages typed before the session is ready
        self._cancel = threading.Event()
        self._current: AssistantMessage | None = None
        self.busy = False
        self.load_error = ""
        self._ctx = 0
        self._tps = 0.0

    def compose(self):
        yield DisclaimerBar(self.disclaimer, id="disclaimer")
        with Horizontal(id="main"):
            yield Conversation(id="conversation")
            yield SourcesPanel(id="sources")
        yield CompletionHint("", id="completions")
        yield ChatInput(completer=lambda text: REGISTRY.complete(self.session, text), id="input")
        yield StatusBar("", id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one(ChatInput).focus()
        self.query_one(CompletionHint).display = False
        self.query_one(SourcesPanel).display = False
        if self.session is not None:
            await self._session_ready()
        else:
            self.query_one(StatusBar).show_loading(self._loading_label)
            self._load()

    # --- loading -------------------------------------------------------------------------
    @work(thread=True, group="load")
    def _load(self) -> None:
        try:
            session = self._loader()
        except Exception as exc:  # shown in the UI; the app stays usable for /quit
            msg = error_line(exc)
            self.call_from_thread(self._load_failed, msg)
        else:
            self.call_from_thread(self._loaded, session)

    def set_loading(self, label: str) -> None:
        """Update the loading label (the loader reports its stages through this)."""
        if self.session is None:
            self.query_one(StatusBar).show_loading(label)

    async def _loaded(self, session) -> None:
        self.session = session
        await self._session_ready()

    async def _load_failed(self, msg: str) -> None:
        self.load_error = msg
        self.query_one(StatusBar).show_loading(f"could not load the model: {msg}")
        await self._notice(f"could not load the model: {msg}", "error")

    async def _session_ready(self) -> None:
        s = self.session
        if s.messages:
            await self.query_one(Conversation).reset(s.messages, s.profile.name)
            self.query_one(ChatInput).input_history = [m["content"] for m in s.messages if m["role"] == "user"]
        for line in self._start_notices:
            await self._notice(line)
        self._ctx = self._count_context()
        self.refresh_status()
        await self._next_in_queue()

    # --- input -----------------------------------------------------------------------------
    async def on_chat_input_submitted(self, event: ChatInput.Submitted) -> None:
        self.query_one(CompletionHint).show_options([])
        await self.handle_text(event.text)

    def on_chat_input_completions_changed(self, event: ChatInput.CompletionsChanged) -> None:
        self.query_one(CompletionHint).show_options(event.options)

    async def handle_text(self, text: str) -> None:
        """Entry point for everything the user sends: messages and /commands."""
        kind, body = classify(text)
        if kind == "command":
            try:
                cmd, _ = REGISTRY.parse(body)
            except UserError as exc:
                await self._notice(str(exc), "error")
                return
            if cmd.instant and (self.session is not None or not cmd.needs_session):
                await self.render_result(REGISTRY.run(self.session, body))
                return
        if self.session is None or self.busy:
            widget = UserMessage(body, pending=True) if kind == "message" else None
            await self.query_one(Conversation).add(widget or Notice(f"queued: {body}", "dim"))
            self._queue.append((kind, body, widget, self._commit_queued(body) if kind == "message" else None))
            return
        await self._start(kind, body)

    def _commit_queued(self, body: str) -> int | None:
        """Write a queued message to the history at once: a crash or kill before it is answered keeps it."""
        if self.session is not None:
            return self.session.queue(body)
        if self.history is None:
            return None
        if self._pending_conversation is None:
            self._pending_conversation = self.history.new_conversation()
        return self.history.add_message(self._pending_conversation, "user", body)

    async def _start(self, kind: str, body: str, widget: UserMessage | None = None, queued_id: int | None = None) -> None:
        self.busy = True
        self._cancel = threading.Event()
        self.refresh_status()
        if kind == "message":
            if widget is not None:
                widget.mark_sent()
            else:
                await self.query_one(Conversation).add(UserMessage(body))
            self._reply_worker(body, queued_id)
        else:
            self._command_worker(body)

    async def _next_in_queue(self) -> None:
        if self._queue and self.session is not None and not self.busy:
            await self._start(*self._queue.popleft())

    # --- workers (threads) ---------------------------------------------------------------
    @work(thread=True, group="turn")
    def _reply_worker(self, text: str, queued_id: int | None = None) -> None:
        self._run_events(lambda cancel: self.session.send(text, cancel, queued_id), prompt=text)

    @work(thread=True, group="turn")
    def _command_worker(self, line: str) -> None:
        try:
            result = REGISTRY.run(self.session, line)
            if result.kind == "stream":
                self.call_from_thread(self._before_stream, result)
                self._run_events(result.events, prompt=None, finish=False)
            elif result.kind == "compare":
                self.call_from_thread(self._notice, result.text, "dim")
                answers = result.compute(self._cancel)
                self.call_from_thread(self._show_compare, answers)
            else:
                self.call_from_thread(self.render_result, result)
        except Exception as exc:
            self.call_from_thread(self._notice, error_line(exc), "error")
        finally:
            self.call_from_thread(self._turn_over)

    def _run_events(self, make_events, prompt: str | None, finish: bool = True) -> None:
        try:
            for ev in make_events(self._cancel):
                if ev.kind == "triage":
                    self.call_from_thread(self._show_triage, ev.triage, ev.text)
                elif ev.kind == "sources":
                    self.call_from_thread(self._show_sources, ev.sources)
                elif ev.kind == "chunk":
                    self.call_from_thread(self._append_chunk, ev.text)
                elif ev.kind == "done":
                    self.call_from_thread(self._finish_reply, ev)
        except Exception as exc:
            self.call_from_thread(self._reply_failed, exc, prompt)
        finally:
            if finish:
                self.call_from_thread(self._turn_over)

    # --- rendering a turn (UI thread) ----------------------------------------------------
    async def _show_triage(self, triage, text: str) -> None:
        await self.query_one(Conversation).add(TriageNotice(text, getattr(triage, "category", "")))

    def _show_sources(self, passages) -> None:
        self.query_one(SourcesPanel).show_sources(passages)

    async def _reply_widget(self) -> AssistantMessage:
        if self._current is None:
            self._current = AssistantMessage(profile=self.session.profile.name, streaming=True)
            await self.query_one(Conversation).add(self._current)
        return self._current

    async def _append_chunk(self, chunk: str) -> None:
        await (await self._reply_widget()).append(chunk)

    async def _finish_reply(self, ev) -> None:
        widget = await self._reply_widget()
        status = "cancelled" if getattr(ev.stats, "stop_reason", "") == "cancelled" else "complete"
        await widget.finish(ev.text, status)
        self._tps = float(getattr(ev.stats, "tokens_per_s", 0.0) or 0.0)
        self.query_one(SourcesPanel).show_sources(ev.sources)
        self._current = None
        if ev.key_facts:
            await self.query_one(Conversation).add(KeyFacts(ev.key_facts))

    async def _reply_failed(self, exc: Exception, prompt: str | None) -> None:
        if self._current is not None:
            await self._current.finish(status="failed")
            self._current = None
        await self._notice(f"reply failed: {error_line(exc)}", "error")
        if prompt is not None:
            # the session has withdrawn the message; it goes back into the input for another try
            users = list(self.query_one(Conversation).query(UserMessage))
            if users and users[-1].text == prompt:
                await users[-1].remove()
            self.query_one(ChatInput).restore(prompt)

    async def _before_stream(self, result: Result) -> None:
        if result.data.get("replace_last"):
            await self.query_one(Conversation).drop_after_last_user()

    async def _show_compare(self, answers: dict) -> None:
        await self.query_one(Conversation).add(CompareView(answers))

    async def _turn_over(self) -> None:
        self.busy = False
        self._current = None
        self._ctx = self._count_context()
        self.refresh_status()
        await self._next_in_queue()

    def _count_context(self) -> int:
        try:
            return self.session.context_tokens()
        except Exception:  # a status-bar number must never break the chat
            return 0

    # --- command results ----------------------------------------------------------------
    async def render_result(self, result: Result) -> None:
        conv = self.query_one(Conversation)
        if result.screen:
            self._open_screen(result.screen, result.data)
        elif result.kind == "error":
            await self._notice(result.text, "error")
        elif result.kind == "table":
            await conv.add(Notice(_table(result)))
        elif result.kind == "action":
            await self._do_action(result)
        elif result.text:
            await self._notice(result.text)
        self.refresh_status()

    async def _do_action(self, result: Result) -> None:
        conv = self.query_one(Conversation)
        if result.action == "quit":
            self.exit()
        elif result.action == "clear":
            await conv.reset([])
            self.query_one(SourcesPanel).show_sources([])
            self._ctx, self._tps = self._count_context(), 0.0
            await self._notice(result.text, "dim")
        elif result.action == "reload":
            await conv.reset(self.session.messages, self.session.profile.name)
            self._ctx = self._count_context()
            await self._notice(result.text, "dim")
        elif result.action == "toggle_sources":
            self.action_toggle_sources()

    def _open_screen(self, screen: str, data: dict) -> None:
        if screen == "help":
            self.action_help()
        elif screen == "profiles":
            self.action_profiles()
        elif screen == "history":
            self.action_history(data.get("query", ""))

    async def _notice(self, text: str, kind: str = "info") -> None:
        await self.query_one(Conversation).add(Notice(text, kind))

    def refresh_status(self) -> None:
        s = self.session
        if s is None:
            return
        p, e = s.profile, s.engine
        self.query_one(StatusBar).show_state(
            p.name, chain_text(p), getattr(e, "base_name", "?"), e.info.get("device", "?"), s.kb_name,
            self._ctx, getattr(e, "context_limit", 0), self._tps, busy="writing…" if self.busy else "")

    # --- key actions ---------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.busy:
            self._cancel.set()

    def action_toggle_sources(self) -> None:
        panel = self.query_one(SourcesPanel)
        if self.session is not None:
            panel.show_sources(self.session.last_sources)
        panel.display = not panel.display

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_profiles(self) -> None:
        if self.session is None:
            self.notify("the model is still loading")
            return
        store = self.session.engine.store
        self.push_screen(ProfilePicker(store.list(), self.session.profile.name),
                         lambda name: name and self.call_later(self.handle_text, f"/use {name}"))

    def action_history(self, query: str = "") -> None:
        if self.session is None or self.session.history is None:
            self.notify("history is not available yet")
            return
        self.push_screen(HistoryBrowser(self.session.history, query),
                         lambda cid: cid is not None and self.call_later(self.handle_text, f"/load {cid}"))


def _table(result: Result) -> Table:
    table = Table(*result.columns, show_edge=False, box=None, header_style="bold")
    for row in result.rows:
        table.add_row(*row)
    return table
