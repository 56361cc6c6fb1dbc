"""Fault injection: a child process doing one store operation is SIGKILLed at seeded random points,
and after every kill the state must be what a crash-safe store promises (see harness.py)."""

from __future__ import annotations

import json
import sqlite3

from child import KB_DIM, KB_NAME, make_adapter_sources
from harness import hidden_leftovers, last_intent, run_kills

from tests.support.fake_engine import default_reply  # noqa: E402


# --- 1. profiles: install / replace / rename / remove ---------------------------------------------
def test_profile_store_survives_kills(tmp_path, monkeypatch):
    from medchat.core.profiles import ProfileStore

    home = tmp_path / "home"
    monkeypatch.setenv("MEDCHAT_HOME", str(home))
    make_adapter_sources(tmp_path)
    sources = {f"src-{k}": sorted(p.name for p in (tmp_path / f"src-{k}").iterdir()) for k in range(3)}

    def check(_i):
        intent = last_intent(tmp_path / "intent.log")
        store = ProfileStore()  # opening sweeps and recovers what the kill left
        assert hidden_leftovers(store.root) == [], "staging/old dirs visible after a fresh open"
        names = store.names()
        for name in names[1:]:
            prof = store.get(name)  # every listed profile loads, its manifest names its own dir
            adapter = store.adapter_dir(name)
            tag = (adapter / "tag.txt").read_text()
            assert prof.description == tag, f"{name}: manifest of {prof.description} over adapter of {tag}"
            assert sorted(p.name for p in adapter.iterdir()) == sources[tag], f"{name}: adapter incomplete"
            assert prof.chain[-1] == name
            for link, link_dir in store.chain_dirs(prof):  # its stack resolves too
                assert link_dir.is_dir(), f"{name} stacks on {link}, which has no adapter"
        if intent[:1] == ["replace"]:
            assert intent[1] in names, f"replacing {intent[1]}: neither the old nor the new is there"
        if intent[:1] == ["rename"]:
            assert intent[1] in names or intent[2] in names, f"renaming {intent[1]}: it vanished"

    run_kills("profiles", tmp_path, kills=60, seed=1301, window=(0.0, 0.25), check=check)


# --- 2. knowledge base replace ----------------------------------------------------------------------
def test_kb_replace_survives_kills(tmp_path, monkeypatch):
    from kb import store
    from kb.index import DenseIndex

    monkeypatch.setenv("MEDCHAT_HOME", str(tmp_path / "home"))
    folder = store.kb_path(KB_NAME)
    seen = {"version": 0}

    def check(_i):
        # a reader does not sweep or lock: the folder itself must be the previous KB or the next one
        manifest = store.read_manifest(folder)
        version, n = manifest["version"], manifest["counts"]["chunks"]
        assert version >= seen["version"], f"KB went back from version {seen['version']} to {version}"
        seen["version"] = version
        lines = (folder / store.CHUNKS).read_text(encoding="utf-8").splitlines()
        assert len(lines) == n, f"manifest says {n} chunks, chunks.jsonl has {len(lines)}"
        texts = [json.loads(line)["text"] for line in lines]
        assert all(t.startswith(f"v{version} ") for t in texts), f"chunks of another version under v{version}"
        dense = DenseIndex.load(folder / store.DENSE, KB_DIM, range(n))
        assert len(dense) == n and float(dense.vectors([0])[0][0]) == version, "vectors of another version"
        with store.lock(KB_NAME):  # the next writer cleans up what the kill left
            store.sweep_leftovers(KB_NAME)
        assert [p for p in hidden_leftovers(folder.parent) if KB_NAME in p] == []

    run_kills("kb", tmp_path, kills=50, seed=1302, window=(0.0, 0.3), check=check)
    assert seen["version"] > 10, "the kills never let a write finish: the test checks nothing"


# --- 3. history while a reply streams ---------------------------------------------------------------
def test_history_survives_kills_mid_stream(tmp_path, monkeypatch):
    from medchat.app.history.store import HistoryStore

    monkeypatch.setenv("MEDCHAT_HOME", str(tmp_path / "home"))
    kept: dict[int, tuple] = {}  # rows a previous check saw finished: they must never change
    stats = {"partial": 0}

    def check(_i):
        with HistoryStore() as hs:
            assert hs.integrity_ok(), "integrity_check failed after a kill"
            db = sqlite3.connect(hs.path)
            rows = db.execute("SELECT id, conversation_id, role, content, status FROM messages ORDER BY id").fetchall()
            db.close()
        by_conv: dict[int, list] = {}
        for row in rows:
            by_conv.setdefault(row[1], []).append(row)
        for conv in by_conv.values():
            for k, (mid, _c, role, content, status) in enumerate(conv):
                assert role == ("user" if k % 2 == 0 else "assistant"), f"message {mid} out of turn"
                if role == "user":
                    assert status == "complete"
                    continue
                full = default_reply("base", conv[k - 1][3])
                if status == "partial":
                    assert k == len(conv) - 1, f"partial reply {mid} is not the last message"
                    assert full.startswith(content), f"partial reply {mid} is not a prefix of the reply"
                    stats["partial"] += 1
                else:
                    assert (status, content) == ("complete", full), f"reply {mid} damaged"
        current = {r[0]: r for r in rows}
        for mid, row in kept.items():
            assert current.get(mid) == row, f"earlier message {mid} changed or vanished"
        kept.update({r[0]: r for r in rows if r[4] == "complete"})

    run_kills("history", tmp_path, kills=50, seed=1303, window=(0.0, 0.4), check=check)
    assert stats["partial"] > 0, "no kill landed mid-reply: the test checks nothing"


# --- 4. evaluation results folder + summary file ----------------------------------------------------
def test_eval_results_survive_kills(tmp_path):
    results = tmp_path / "results"
    seen = {"gen": 0, "summary": 0}

    def check(_i):
        run = results / "run"
        if not run.exists():
            assert seen["gen"] == 0, "the results folder vanished"
            return
        metrics = json.loads((run / "metrics.json").read_text())
        gen = metrics["gen"]
        assert gen >= seen["gen"]
        seen["gen"] = gen
        preds = sorted(run.glob("predictions-*.jsonl"))
        assert len(preds) == metrics["files"], f"gen {gen}: {len(preds)} of {metrics['files']} prediction files"
        for p in preds:
            lines = p.read_text().splitlines()
            assert len(lines) == 3000 and set(lines) == {f'{{"gen": {gen}}}'}, f"{p.name} is partial or mixed"
        summary = results / "summary.json"
        if summary.exists():  # written after the folder, so it may lag it but never run ahead or go back
            data = json.loads(summary.read_text())  # a partial file would not parse
            assert len(data["pad"]) == 200_000, "summary.json is partial"
            assert seen["summary"] <= data["gen"] <= gen, f"summary.json at gen {data['gen']}, folder at {gen}"
            seen["summary"] = data["gen"]

    run_kills("eval", tmp_path, kills=50, seed=1304, window=(0.0, 0.3), check=check)
    assert seen["gen"] > 10, "the kills never let a write finish: the test checks nothing"


# --- 5. training checkpoints: what --resume would pick up --------------------------------------------
def test_checkpoints_survive_kills(tmp_path):
    from trainer.runs import Run

    seen = {"step": 0}

    def check(_i):
        run = Run(tmp_path / "run")
        latest = run.latest_checkpoint()  # also clears the half-saved temp dirs
        if latest is None:
            assert seen["step"] == 0, "every checkpoint vanished"
            return
        step = json.loads((latest / "state.json").read_text())["step"]
        assert int((latest / "COMPLETE").read_text()) == step, "COMPLETE and state.json disagree"
        assert step >= seen["step"], f"latest checkpoint went back from {seen['step']} to {step}"
        seen["step"] = step
        tag = step.to_bytes(4, "little")
        assert (latest / "adapter" / "adapter_model.safetensors").read_bytes() == tag * 100_000, "adapter partial"
        assert (latest / "optimizer.pt").read_bytes() == tag * 200_000, "optimizer state partial"
        assert [p.name for p in run.checkpoints_dir.iterdir() if p.name.startswith(".")] == []

    run_kills("checkpoints", tmp_path, kills=25, seed=1305, window=(0.0, 0.3), check=check)
    assert seen["step"] > 10, "the kills never let a save finish: the test checks nothing"
