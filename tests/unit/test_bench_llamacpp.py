"""decode.vs_llamacpp: the child-process run, the fallback to plain weights, the ratio and the skip note.

Fake "pythons" stand in for an interpreter with llama-cpp-python: tiny scripts that answer the
`import llama_cpp` probe and print the child's JSON. No timing is asserted.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from medchat.app import bench_llamacpp as bl

FAKE = """#!{exe}
import json, os, signal, sys
if sys.argv[1:3] == ["-c", "import llama_cpp"]:
    sys.exit(0)
a = json.loads(sys.argv[3])
with open({log!r}, "a") as f:
    f.write(json.dumps({{"plain": a["plain"], "threads": a["threads"], "tokens": a["tokens"], "ids": a["ids"]}}) + "\\n")
mode = {mode!r}
if mode == "segv" and not a["plain"]:
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "broken":
    sys.stderr.write("boom\\n")
    sys.exit(3)
print("some llama.cpp chatter")
print(json.dumps({{"tok_s": 40.0 if a["plain"] else 80.0, "n_tokens": a["tokens"], "ids": [1] * a["tokens"],
                  "version": "fake"}}))
"""


def fake_python(tmp_path, mode: str):
    log = tmp_path / f"{mode}.log"
    path = tmp_path / f"python-{mode}"
    path.write_text(FAKE.format(exe=sys.executable, log=str(log), mode=mode), encoding="utf-8")
    path.chmod(0o755)
    return str(path), log


def calls(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def test_repacked_weights_are_tried_first(tmp_path):
    py, log = fake_python(tmp_path, "ok")
    got = bl.run_llamacpp(py, "m.gguf", [5, 6, 7], tokens=4, threads=2, repeats=1)
    assert got["config"] == "repacked" and got["tok_s"] == 80.0 and got["n_tokens"] == 4
    assert calls(log) == [{"plain": False, "threads": 2, "tokens": 4, "ids": [5, 6, 7]}]


def test_a_segfault_falls_back_to_plain_weights(tmp_path):
    py, log = fake_python(tmp_path, "segv")
    got = bl.run_llamacpp(py, "m.gguf", [5, 6], tokens=3, threads=2, repeats=1)
    assert [c["plain"] for c in calls(log)] == [False, True]
    assert got["tok_s"] == 40.0
    assert got["config"] == "plain (use_extra_bufts=False; repacked path crashed: SIGSEGV)"


def test_both_configurations_failing_is_reported_not_raised(tmp_path):
    py, log = fake_python(tmp_path, "broken")
    got = bl.run_llamacpp(py, "m.gguf", [5], tokens=2, threads=1, repeats=1)
    assert len(calls(log)) == 2
    assert "error" in got and "boom" in got["error"]
    fig = bl.ratio_figures(50.0, got)
    assert fig["vs_llamacpp"] is None and "failed" in fig["llamacpp_note"]


def test_ratio_is_medchat_over_llamacpp():
    fig = bl.ratio_figures(30.0, {"tok_s": 120.0, "config": "repacked", "version": "x"})
    assert fig["vs_llamacpp"] == 0.25
    assert fig["llamacpp_tok_s"] == 120.0 and fig["llamacpp_config"] == "repacked"
    assert "LoRA" in fig["llamacpp_note"]


def test_compare_uses_the_engine_prompt_ids_and_threads(tmp_path, monkeypatch):
    import torch

    py, log = fake_python(tmp_path, "segv")
    monkeypatch.setattr(bl, "gguf_for", lambda base: "m.gguf")
    engine = SimpleNamespace(prompt_ids=lambda prompt, n: [9, 8, 7])
    got = bl.compare(engine, [{"role": "user", "content": "hi"}], tokens=5, repeats=1, medchat_tok_s=20.0,
                     python=py)
    assert got["vs_llamacpp"] == 0.5 and got["llamacpp_config"].startswith("plain")
    assert got["llamacpp_threads"] == torch.get_num_threads()
    assert calls(log)[0] == {"plain": False, "threads": torch.get_num_threads(), "tokens": 5, "ids": [9, 8, 7]}


def test_skip_note_without_llama_cpp(monkeypatch):
    monkeypatch.setattr(bl.importlib.util, "find_spec", lambda name: None)
    engine = SimpleNamespace(prompt_ids=lambda *a: pytest.fail("no run without llama_cpp"))
    got = bl.compare(engine, [], tokens=4, repeats=1, medchat_tok_s=20.0)
    assert got == {"vs_llamacpp": None, "llamacpp_note": bl.SKIP_NOTE}
    assert bl.SKIP_NOTE == "llama-cpp-python not importable; pass --llamacpp-python PATH"


def test_an_explicit_python_without_llama_cpp_is_named_in_the_note(tmp_path):
    got = bl.compare(SimpleNamespace(), [], tokens=4, repeats=1, medchat_tok_s=20.0, python=sys.executable
                     if bl.importlib.util.find_spec("llama_cpp") is None else str(tmp_path / "nope"))
    assert got["vs_llamacpp"] is None and "cannot import llama_cpp" in got["llamacpp_note"]


def test_bench_flag_is_registered():
    import argparse

    from medchat.app.cli import bench_cmd

    parser = argparse.ArgumentParser()
    bench_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--llamacpp-python", "/x/python", "--only", "decode"])
    assert args.llamacpp_python == "/x/python"
