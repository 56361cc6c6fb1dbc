"""`medchat bench --only under_load,first_answer` end to end on the tiny model: the new keys reach the
JSON output and the table, the competing load is gone afterwards, and the first answer really comes
from a `medchat ask` child in a fresh home. No speed or duration is asserted.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from medchat.app import bench_load
from medchat.app.cli import bench_cmd

ROOT = Path(__file__).resolve().parents[2]


def bench_args(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    bench_cmd.register(parser.add_subparsers())
    return parser.parse_args(["bench", *map(str, argv)])


@pytest.mark.slow
def test_under_load_and_first_answer_reach_the_json(tiny_model_dir, tmp_path, monkeypatch, capsys, hogs):
    from medchat.app.bench import run_all

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the `medchat ask` child imports this checkout
    # the random tiny model never stops by itself: keep its first answer short
    monkeypatch.setattr(bench_load, "first_answer", partial(bench_load.first_answer, max_new_tokens=4))
    out = tmp_path / "bench.json"
    args = bench_args("--only", "under_load,first_answer", "--base", tiny_model_dir, "--tokens", 4,
                      "--repeats", 1, "--json", "--out", out)
    assert run_all(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    decode, start = printed["decode"], printed["start"]
    assert {"under_load_ratio", "under_load_tok_s", "under_load_idle_tok_s", "under_load_threads",
            "under_load_load_avg", "under_load_same_session_ratio"} <= set(decode)
    assert isinstance(decode["under_load_ratio"], float) and decode["under_load_threads"] == bench_load.cores()
    assert len(hogs) == 2 and all(h.returncode is not None for h in hogs)
    assert start.get("first_answer_note") == bench_load.kb_note()  # noted only when the ask builds the index
    assert isinstance(start["first_answer_s"], float), start
    # a fresh home answers with base, within the 4-token cap; not exactly 4: the random model's greedy tokens
    # follow the thread count the load leaves (seen in a full-suite run: its end-of-text token came first)
    assert 1 <= start["first_answer_tokens"] <= 4 and start["first_answer_profile"] == "base"
    assert len(printed["machine"]["load_avg_start"]) == 3


def test_the_table_shows_the_new_keys(capsys):
    from medchat.app.bench import _table

    _table({"decode": {"under_load_ratio": 0.61}, "start": {"first_answer_s": 3.2}})
    text = capsys.readouterr().out
    assert "under_load_ratio" in text and "first_answer_s" in text
