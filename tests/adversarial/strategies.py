"""Shared generators for the adversarial tier, the case counter and the "clean outcome" check.

Every test body calls `tally(area)` once per generated example, so the terminal summary can say how
many inputs were thrown at each area. `clean(fn, *errors)` runs one call and accepts only success or
one of `errors` (UserError by default) whose message is a single non-empty line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from medchat.core.errors import UserError

CASES: Counter = Counter()


def tally(area: str) -> None:
    CASES[area] += 1


def fast(n: int = 40):
    """@settings for this tier: few examples, no deadline (the machine is shared), no fixture nagging.
    The suite runs the same derandomized examples every time, so a fresh clone's result does not hang
    on luck; ADVERSARIAL_SCALE=10 multiplies the examples and searches at random, for a deeper hunt
    by hand (it found the field name holding "\r" that split an error over two lines)."""
    scale = int(os.environ.get("ADVERSARIAL_SCALE", "1"))
    return settings(max_examples=n * scale, deadline=None, database=None, derandomize=scale == 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def clean(fn, *args, errors=(UserError,), **kwargs):
    """Success, or an expected error with ONE clear line; anything else propagates as a failure."""
    try:
        return fn(*args, **kwargs)
    except errors as exc:
        msg = str(exc)
        assert msg.strip(), f"{type(exc).__name__} with an empty message"
        assert "\n" not in msg and "\r" not in msg, f"multi-line {type(exc).__name__}: {msg!r}"
        assert "Traceback" not in msg, msg
        return exc


@contextlib.contextmanager
def scratch():
    """A fresh temp dir per example (function-scoped fixtures are shared across hypothesis examples)."""
    d = Path(tempfile.mkdtemp(prefix="adv-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def leftovers(folder: Path) -> list[str]:
    """Half-written files: staging dirs and atomic-write temp files left behind."""
    return [p.name for p in Path(folder).rglob("*")
            if p.name.startswith((".staging-", ".old-")) or (p.name.startswith(".") and p.name.endswith(".tmp"))]


# --- text ------------------------------------------------------------------------------------
# any unicode except lone surrogates (they cannot be encoded to UTF-8, so no file can hold them)
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
controls = st.text(st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from("\x7f\u2028\u2029\ufeff\u200b"),
                   max_size=40)
huge_text = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=8), st.integers(1000, 20000))
mixed_text = st.one_of(any_text, controls, huge_text, st.sampled_from(["", " ", "\n", "null", "{}", "[]", "'", '"']))
keys = st.one_of(st.sampled_from(["instruction", "input", "output", "conversations", "messages", "from", "value",
                                  "role", "content", "text", "prompt", "chosen", "rejected", "question", "answer",
                                  "system", "history", "response", "query", "completion", "title", "body"]),
                 any_text)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), mixed_text)
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=5),
                           max_leaves=15)
records = st.dictionaries(keys, json_values, max_size=6)
bad_utf8 = st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80",
                            b"\x00\x00", b"\xef\xbb\xbf"])
raw_bytes = st.one_of(st.binary(max_size=300),
                      st.builds(lambda a, b, c: a + b + c, st.binary(max_size=60), bad_utf8, st.binary(max_size=60)))


def as_bytes(value) -> st.SearchStrategy[bytes]:
    """Text encoded, text with bad bytes spliced in, or raw bytes."""
    return st.one_of(value.map(lambda t: t.encode("utf-8")),
                     st.builds(lambda t, bad: t.encode("utf-8") + bad, value, bad_utf8), raw_bytes)
