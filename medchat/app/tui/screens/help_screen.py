"""F1 or /help: keys and commands, generated from the bindings and the command registry."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from medchat.app.commands import REGISTRY

KEYS = [("Enter", "send the message"), ("Shift+Enter / Ctrl+J", "new line in the message"),
        ("Up / Down", "previous / next input (on the first / last line)"), ("Tab", "complete a /command"),
        ("Esc", "stop the reply being written"), ("Ctrl+P", "profile picker"), ("Ctrl+R", "history browser"),
        ("Ctrl+S", "sources panel"), ("F1", "this help"), ("Ctrl+Q", "quit")]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def help_markdown() -> str:
    keys = "\n".join(f"| {k} | {v} |" for k, v in KEYS)
    cmds = "\n".join(f"| `{_cell(u)}` | {_cell(h)} |" for u, h in REGISTRY.help_rows())
    return (f"# medchat help\n\n## Keys\n\n| key | does |\n|---|---|\n{keys}\n\n"
            f"## Commands\n\n| command | does |\n|---|---|\n{cmds}\n| `//TEXT` | send a message that starts with `/` |\n\n"
            "Esc closes this screen.")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss(None)", "close")]

    def compose(self):
        with VerticalScroll(id="help"):
            yield Markdown(help_markdown())
