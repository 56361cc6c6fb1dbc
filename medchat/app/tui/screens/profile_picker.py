"""Ctrl+P: pick a profile. Shows each profile's stage, base, chain, datasets and metrics; Enter
selects (the app hot-swaps to it), Esc closes."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option


def describe(profile) -> str:
    datasets = "\n".join(f"  {d.get('name', '?')} ({d.get('rows', '?')} rows)" for d in profile.datasets) or "  -"
    metrics = "\n".join(f"  {k}: {v}" for k, v in profile.metrics.items()) or "  -"
    chain = " › ".join(profile.chain) or profile.name
    lines = [profile.name, "", f"stage:  {profile.stage or '-'}", f"kind:   {profile.kind}",
             f"base:   {profile.base or '(the loaded base)'}", f"chain:  {chain}",
             f"method: {profile.method or '-'}", "datasets:", datasets, "metrics:", metrics]
    if profile.description:
        lines += ["", profile.description]
    return "\n".join(lines)


class ProfilePicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "close")]

    def __init__(self, profiles: list, active: str):
        super().__init__()
        self.profiles = {p.name: p for p in profiles}
        self.active = active

    def compose(self):
        with Vertical(id="picker"):
            yield Label("Profiles — Enter switches, Esc closes", classes="screen-title")
            with Horizontal():
                options = [Option(Text(("● " if n == self.active else "  ") + n), id=n, disabled=p.kind != "chat")
                           for n, p in self.profiles.items()]
                yield OptionList(*options, id="profile-list")
                yield Static("", id="profile-details", markup=False)

    def on_mount(self) -> None:
        olist = self.query_one(OptionList)
        names = list(self.profiles)
        olist.highlighted = names.index(self.active) if self.active in names else 0
        olist.focus()
        self._details(names[olist.highlighted or 0])

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._details(event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def _details(self, name: str) -> None:
        self.query_one("#profile-details", Static).update(describe(self.profiles[name]))
