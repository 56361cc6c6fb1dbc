"""The chat side: slash commands, `/set`, history exports and triage on arbitrary text."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from tests.adversarial.strategies import any_text, clean, controls, fast, huge_text, json_values, leftovers, mixed_text, scratch, tally

from tests.support.fake_engine import FakeEngine, install_fake_profiles  # noqa: E402

from medchat.app.commands import REGISTRY  # noqa: E402
from medchat.app.history import HistoryStore  # noqa: E402
from medchat.app.history.export import render  # noqa: E402
from medchat.core.profiles import ProfileStore  # noqa: E402
from medchat.app.session import ChatSession  # noqa: E402
from medchat.core.settings import GenerationSettings  # noqa: E402
from medchat.app.triage import triage  # noqa: E402

KINDS = ("text", "markdown", "table", "error", "action", "stream", "compare", "open_screen", "none")
NAMES = sorted({c.name for c in REGISTRY.commands()} | {"exit", "q", "", "nosuch"})
numbers = st.sampled_from(["0", "-1", "1e309", "nan", "inf", "-inf", "1" * 40, "0x1f", "1_0", "٣", "１２", "None", "off",
                           "3.5", "1e-400", "9" * 5000])
# no path words here: /export paths are generated inside a scratch folder (random ones could write anywhere)
args = st.one_of(any_text, controls, numbers, huge_text, st.sampled_from(NAMES),
                 st.lists(any_text | numbers, max_size=4).map(" ".join))


def _line(name: str, arg: str, folder: Path) -> str:
    if name == "export":  # keep the file under the scratch folder
        fmt, _, rest = arg.partition(" ")
        return f"/export {fmt or 'md'} {folder / (rest.replace('/', '_') or 'x')}"
    return f"/{name} {arg}"


@fast(80)
@given(first=mixed_text, steps=st.lists(st.tuples(st.sampled_from(NAMES), args), min_size=1, max_size=4))
def test_slash_commands_with_any_arguments(first, steps):
    tally("commands")
    with scratch() as d, HistoryStore(d / "h.db") as history:
        session = ChatSession(FakeEngine(install_fake_profiles(ProfileStore(d / "profiles"))), history=history,
                              kb=None, triage=lambda t: None)
        if first.strip():
            list(session.send(first))
        for name, arg in steps:
            result = REGISTRY.run(session, _line(name, arg, d))
            assert result.kind in KINDS and isinstance(result.plain(), str)
            if result.kind == "error":
                assert result.text.strip() and "\n" not in result.text, result.text
            if result.events is not None:  # /retry: the reply is produced when the front end drains it
                clean(lambda: list(result.events(threading.Event())))
            if result.compute is not None:  # /compare
                clean(result.compute, threading.Event())
        assert not leftovers(d)


@fast(80)
@given(name=st.sampled_from([f.name for f in GenerationSettings.__dataclass_fields__.values()]
                            if hasattr(GenerationSettings, "__dataclass_fields__") else ["temperature"])
       | any_text, raw=st.one_of(numbers, any_text, st.integers(), st.floats(), st.none()))
def test_set_any_value(name, raw):
    tally("/set")
    got = clean(GenerationSettings().with_value, name, raw)
    if isinstance(got, GenerationSettings):
        lo, hi = GenerationSettings._BOUNDS[name]
        value = getattr(got, name)
        assert value is None or lo <= value <= hi


message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | any_text, "created": any_text,
     "content": mixed_text | st.none()},
    optional={"profile": any_text | st.none(), "status": st.sampled_from(["complete", "cancelled", "error"]) | any_text,
              "triage": st.none() | st.fixed_dictionaries({"guidance": mixed_text}) | json_values,
              "sources": st.none() | st.lists(st.fixed_dictionaries({}, optional={"title": any_text, "source": json_values})
                                              | json_values, max_size=3)})
conversation = st.fixed_dictionaries({"id": st.integers(), "created": any_text},
                                     optional={"title": mixed_text, "profile": any_text, "system_prompt": mixed_text})


@fast(60)
@given(conv=conversation, msgs=st.lists(message, max_size=4), fmt=st.sampled_from(["md", "json"]))
def test_render_any_conversation(conv, msgs, fmt):
    tally("history export")
    out = render(conv, msgs, fmt)
    assert isinstance(out, str) and out.endswith("\n")
    if fmt == "json":
        assert json.loads(out)["messages"] == msgs


@fast(40)
@given(title=mixed_text, system=mixed_text, contents=st.lists(st.tuples(st.sampled_from(["user", "assistant"]),
                                                                        mixed_text, json_values), max_size=4),
       fmt=st.sampled_from(["md", "json", "markdown", "pdf", "", ".JSON"]), name=any_text)
def test_store_export_of_random_content(title, system, contents, fmt, name):
    tally("history export")
    with scratch() as d, HistoryStore(d / "h.db") as store:
        cid = store.new_conversation(title=title, system_prompt=system)
        for role, content, sources in contents:
            clean(store.add_message, cid, role, content, sources=sources if isinstance(sources, list) else None)
        target = d / "out" / (name.replace("/", "_") or "x")
        got = clean(store.export, cid, fmt, target)
        if isinstance(got, Path):
            assert got.read_text(encoding="utf-8")
        assert not leftovers(d / "out") if (d / "out").exists() else True


@fast(60)
@given(text=st.one_of(any_text, controls, huge_text.map(lambda t: t[:20000]),
                      st.lists(any_text | controls | st.sampled_from(["chest pain", "can't breathe", "overdose"]),
                               max_size=6).map(" ".join)))
def test_triage_any_text(text):
    tally("triage")
    result = triage(text)
    assert isinstance(result.emergency, bool)
