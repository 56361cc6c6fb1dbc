"""The shipped doctor SFT data (scripts/build_doctor_data.py): rendered like the chat, cited passages
exist, numbers come from the cited passage, no test-split condition, abstentions present."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from kb.grounded import load_questions, split_of
from kb.key_facts import LINES_HEADER, PROMPT_LIMIT
from medchat.app.context import KB_HEADER
from medchat.core.settings import DOCTOR_SYSTEM_PROMPT

SAMPLES = Path(__file__).resolve().parents[2] / "trainer" / "samples"
FILES = ("doctor_sft_train.json", "doctor_sft_val.json")
PASSAGE_RE = re.compile(r"^\[(\d+)\] ", re.M)


def _rows(name):
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def _passages(user: str) -> dict[int, str]:
    """[n] -> the passage line's text, from a rendered user turn."""
    context = user.split("\n\nQuestion: ")[0].split("\n\n" + LINES_HEADER)[0]
    out = {}
    for line in context.splitlines()[1:]:
        m = PASSAGE_RE.match(line)
        assert m, f"unexpected context line {line[:60]!r}"
        out[int(m.group(1))] = line
    return out


@pytest.fixture(scope="module", params=FILES)
def rows(request):
    return _rows(request.param)


def test_every_example_is_rendered_like_the_chat(rows):
    for r in rows:
        assert r["system"] == DOCTOR_SYSTEM_PROMPT
        turns = r["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        last = turns[-2]["value"]
        assert last.startswith(KB_HEADER + "\n[1] ") and "\n\nQuestion: " in last
        assert 2 <= len(_passages(last)) <= 4
        for earlier in turns[:-2:2]:  # earlier user turns are kept plain, as the chat keeps them
            assert not earlier["value"].startswith(KB_HEADER)


def test_citations_exist_and_numbers_come_from_the_cited_passage(rows):
    for r in rows:
        user, reply = r["conversations"][-2]["value"], r["conversations"][-1]["value"]
        passages = _passages(user)
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", reply)}
        assert cited <= set(passages), reply
        for sentence in re.split(r"(?<=\]\.)\s+|(?<=\]),\s", reply):
            refs = re.findall(r"\[(\d+)\]", sentence)
            text = re.sub(r"\[\d+\]", "", sentence)
            for number in re.findall(r"\d+(?:\.\d+)?", text):
                assert refs and any(number in passages[int(n)] for n in refs), (number, sentence)


def _key_lines(user: str) -> list[tuple[int, str]]:
    """(n, sentence) of the "most relevant sentences" the prompt lists after the passages."""
    context = user.split("\n\nQuestion: ")[0]
    if "\n\n" + LINES_HEADER not in context:
        return []
    lines = context.split("\n\n" + LINES_HEADER + "\n")[1].splitlines()
    return [(int(n), sentence) for n, sentence in (re.match(r"^\[(\d+)\] \(.+?\) (.+)$", x).groups() for x in lines)]


def test_key_lines_quote_their_passage_and_answers_restate_what_the_prompt_shows(rows):
    restated = total = 0
    for r in rows:
        user, reply = r["conversations"][-2]["value"], r["conversations"][-1]["value"]
        passages, lines = _passages(user), _key_lines(user)
        assert len(lines) <= PROMPT_LIMIT
        assert all(sentence in passages[n] for n, sentence in lines)  # verbatim, from the [n] it names
        if r["kind"] == "abstain":
            continue
        for n, sentence in lines:  # a listed line the answer uses is cited to a passage holding it
            core = sentence[1:].rstrip(";,. ")  # as restated: the first letter and the end may change
            if len(core) > 15 and core + " [" in reply:
                restated += 1
                assert any(f"[{m}]" in reply for m, text in passages.items() if sentence in text), (sentence, reply)
        total += bool(lines)
    assert restated >= total  # on average at least one listed line per answer that had any


def test_grounded_answers_cite_and_abstentions_do_not():
    rows = _rows(FILES[0])
    kinds = {k: [r for r in rows if r["kind"] == k] for k in ("grounded", "abstain", "follow-up")}
    assert all(re.search(r"\[\d\]", r["conversations"][-1]["value"]) for r in kinds["grounded"])
    assert 0.08 <= len(kinds["abstain"]) / len(rows) <= 0.16
    assert 0.10 <= len(kinds["follow-up"]) / len(rows) <= 0.20
    assert all(len(r["conversations"]) == 4 for r in kinds["follow-up"])
    assert len({r["conversations"][-1]["value"] for r in kinds["abstain"]}) >= 3  # several wordings
    assert not any(re.search(r"\[\d\]", r["conversations"][-1]["value"]) for r in kinds["abstain"])


def test_no_test_split_condition_appears_anywhere():
    test_titles = set()
    kb_dir = Path(__file__).resolve().parents[2] / "kb" / "data" / "default"
    for q in load_questions():
        if q.covered and q.split == "test":
            test_titles.add((kb_dir / q.source).read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip())
    assert test_titles and all(split_of(s) == "test" for s in [q.source for q in load_questions()
                                                                 if q.covered and q.split == "test"])
    test_q = {q.question for q in load_questions() if q.split == "test"}
    for name in FILES:
        for r in _rows(name):
            for t in r["conversations"][::2]:
                for line in _passages(t["value"]).values() if t["value"].startswith(KB_HEADER) else []:
                    title = line.split("] ", 1)[1].split(" — ")[0].split(": ")[0]
                    assert title not in test_titles, (name, title)
                assert t["value"].split("\n\nQuestion: ")[-1] not in test_q


def test_manifest_records_the_hash_of_each_output():
    manifest = json.loads((SAMPLES / "doctor_sft_manifest.json").read_text())
    for name in FILES:
        assert manifest["outputs"][name] == hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest()


def test_the_datasets_are_registered_for_the_trainer():
    info = json.loads((SAMPLES / "dataset_info.json").read_text())
    assert info["doctor_sft"]["file_name"] == FILES[0] and info["doctor_sft_val"]["file_name"] == FILES[1]


def _builder(listed):
    """build_doctor_data.Builder without its KB and embedder: `lines` returns `listed`."""
    import importlib.util
    import random

    path = Path(__file__).resolve().parents[2] / "scripts" / "build_doctor_data.py"
    spec = importlib.util.spec_from_file_location("build_doctor_data_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    b = object.__new__(module.Builder)
    b.rng = random.Random(0)
    b.lines = lambda question, passages, query="": listed
    return b


def test_a_question_about_when_to_seek_care_is_answered_with_the_seek_care_lines_first():
    from types import SimpleNamespace as NS

    passages = [NS(source="gout.md", section="Treatment", text="Rest the joint."),
                NS(source="gout.md", section="When to seek care", text="See a doctor for a hot swollen joint.")]
    listed = [NS(n=2, sentence="See a doctor for a hot swollen joint with fever.", section="When to seek care",
                 source="gout.md"),
              NS(n=1, sentence="Rest the joint and raise it.", section="Treatment", source="gout.md")]
    asked = _builder(listed).answer(passages, "when should I get help for gout", "gout.md", "When to seek care")
    assert asked.startswith("See a doctor for a hot swollen joint with fever [2].")
    assert asked.count("hot swollen joint") == 1  # no second seek-care line appended
    # a worried question about another section: that section's lines first, then the seek-care line
    worried = _builder(listed).answer(passages, "is gout serious, how is it treated", "gout.md", "Treatment")
    assert worried.startswith("Rest the joint and raise it [1].") and worried.endswith("with fever [2].")
