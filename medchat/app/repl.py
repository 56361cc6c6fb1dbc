"""The plain front end: a prompt-toolkit REPL (`medchat chat --plain`), or plain line reading when
stdin is not a terminal, so scripts can pipe in questions and /commands.

It shares the command registry and the session with the TUI. Replies are generated in a thread and
printed as they arrive; Ctrl+C stops a reply (the partial reply is kept, marked cancelled).
A message may span lines inside a \"\"\" block.
"""

from __future__ import annotations

import queue
import sys
import threading

from kb.key_facts import format_block
from medchat.app.commands import REGISTRY, Result, classify
from medchat.core.errors import error_line
from medchat.app.context import citation_footer

BLOCK = '"""'
_END = object()


def _completer(session):
    from prompt_toolkit.completion import Completer, Completion

    class RegistryCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            for option in REGISTRY.complete(session, text):
                shown = option.rstrip().rsplit(" ", 1)[-1]
                yield Completion(option, start_position=-len(text), display=shown)

    return RegistryCompleter()


class Repl:
    def __init__(self, session, tty: bool = True, input=None, output=None, stdin=None, out=None):
        """tty=True: prompt-toolkit (input/output may be a pipe input and DummyOutput in tests);
        tty=False: read `stdin` line by line. Everything shown goes to `out` (default stdout)."""
        self.session = session
        self.tty = tty
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stdout
        self._refill = ""  # a failed message goes back into the next prompt
        self._prompt = None
        if tty:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory

            from medchat.core import paths

            self._prompt = PromptSession(history=FileHistory(str(paths.private_file(paths.home() / "repl_history"))),
                                         completer=_completer(session), complete_while_typing=False,
                                         input=input, output=output)

    # --- output ------------------------------------------------------------------------------
    def write(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    # --- input -------------------------------------------------------------------------------
    def _read_line(self, prompt: str, default: str = "") -> str | None:
        if self._prompt is not None:
            try:
                return self._prompt.prompt(prompt, default=default)
            except EOFError:
                return None
        line = self.stdin.readline()
        return None if line == "" else line.rstrip("\n")

    def read(self) -> str | None:
        """One message or command; a \"\"\" block may span lines. None at end of input."""
        default, self._refill = self._refill, ""
        line = self._read_line("you> ", default)
        if line is None or not line.strip().startswith(BLOCK):
            return line
        body = line.strip()[len(BLOCK):]
        while not body.rstrip().endswith(BLOCK):
            more = self._read_line("...  ")
            if more is None:
                break
            body += "\n" + more
        body = body.rstrip()
        return body[: -len(BLOCK)] if body.endswith(BLOCK) else body

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        if self.tty:
            self.write(f"{self.session.disclaimer}\nType a question, /help for commands, /quit to leave.")
        while True:
            try:
                line = self.read()
            except KeyboardInterrupt:
                continue
            if line is None:
                return 0
            if not line.strip():
                continue
            kind, body = classify(line)
            if kind == "command":
                if self.handle(REGISTRY.run(self.session, body)) == "quit":
                    return 0
            else:
                self.stream(lambda cancel: self.session.send(body, cancel), prompt=body)

    def handle(self, result: Result) -> str:
        if result.kind == "error":
            self.write(f"medchat: {result.text}")
        elif result.kind == "stream":
            self.write(f"({result.text})")
            self.stream(result.events)
        elif result.kind == "compare":
            self.write(f"({result.text})")
            answers = self._in_thread(result.compute)
            for name, text in (answers or {}).items():
                self.write(f"── {name} ──\n{text.strip()}\n")
        elif result.kind == "action" and result.action == "quit":
            return "quit"
        else:
            text = result.plain()
            if text:
                self.write(text)
        return ""

    def _in_thread(self, fn):
        """Run fn(cancel) in a thread; Ctrl+C sets cancel. Returns fn's result, None on error."""
        done: queue.Queue = queue.Queue()
        cancel = threading.Event()

        def work():
            try:
                done.put(fn(cancel))
            except BaseException as exc:  # reported on the main thread
                done.put(exc)

        threading.Thread(target=work, daemon=True).start()
        while True:
            try:
                item = done.get(timeout=0.1)
                break
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                cancel.set()
        if isinstance(item, BaseException):
            self.write(f"medchat: {error_line(item)}")
            return None
        return item

    def stream(self, make_events, prompt: str | None = None) -> None:
        """Print a reply as it is generated. A failed message is offered again."""
        events: queue.Queue = queue.Queue()
        cancel = threading.Event()

        def work():
            try:
                for ev in make_events(cancel):
                    events.put(ev)
            except BaseException as exc:
                events.put(exc)
            finally:
                events.put(_END)

        threading.Thread(target=work, daemon=True).start()
        started = False
        while True:
            try:
                item = events.get(timeout=0.1)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                cancel.set()
                continue
            if item is _END:
                break
            if isinstance(item, BaseException):
                self.write(("\n" if started else "") + f"medchat: reply failed: {error_line(item)}")
                self._roll_back(prompt)
                continue
            if item.kind == "triage":
                self.write(f"⚠ {item.text}\n")
            elif item.kind == "chunk":
                started = True
                self.write(item.text, end="")
            elif item.kind == "done":
                stopped = getattr(item.stats, "stop_reason", "") == "cancelled"
                footer = citation_footer(item.sources)
                self.write(" [stopped]" if stopped else "")
                if footer:
                    self.write(f"\n{footer}")
                facts = format_block(item.key_facts)
                if facts:
                    self.write(f"\n{facts}")
                self.write()

    def _roll_back(self, prompt: str | None) -> None:
        """The session has withdrawn the failed message; offer it again."""
        if prompt is not None and self.tty:
            self._refill = prompt


def run_repl(session, tty: bool = True, **kwargs) -> int:
    return Repl(session, tty=tty, **kwargs).run()
