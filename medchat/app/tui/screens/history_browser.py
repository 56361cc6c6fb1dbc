"""Ctrl+R or /history: browse past conversations, or full-text search their messages; Enter loads."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option


def _one_line(text, n: int = 70) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


class HistoryBrowser(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "close"), Binding("down", "focus_list", show=False)]

    def __init__(self, store, query: str = ""):
        super().__init__()
        self.store = store
        self.query_text = query

    def compose(self):
        with Vertical(id="history"):
            yield Label("History — type to search, Enter loads, Esc closes", classes="screen-title")
            yield Input(self.query_text, placeholder="search messages…", id="history-search")
            yield OptionList(id="history-list")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self.refresh_results(self.query_text)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_results(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        olist = self.query_one(OptionList)
        if olist.option_count:
            olist.focus()
            olist.highlighted = 0

    def action_focus_list(self) -> None:
        self.query_one(OptionList).focus()

    def refresh_results(self, query: str) -> None:
        query = query.strip()
        try:
            rows = self.store.search(query, limit=30) if query else self.store.conversations(limit=50)
        except Exception as exc:  # a half-typed FTS query may not parse: show it, keep typing
            rows, error = [], str(exc)
        else:
            error = ""
        options = []
        for i, r in enumerate(rows):
            cid = r.get("conversation_id", r.get("id")) if query else r.get("id")
            if query:
                label = f"#{cid}  {_one_line(r.get('title'), 24)}  {r.get('role', '')}: {_one_line(r.get('snippet') or r.get('content'))}"
            else:
                label = f"#{cid}  {_one_line(r.get('title') or '(untitled)', 40)}  {r.get('profile', '')}  {r.get('updated') or r.get('created') or ''}"
            options.append(Option(Text(label), id=f"{cid}:{i}"))
        olist = self.query_one(OptionList)
        olist.clear_options()
        if options:
            olist.add_options(options)
        else:
            olist.add_option(Option(Text(error or ("nothing matches" if query else "no conversations yet")), disabled=True))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(int(event.option.id.split(":")[0]))
