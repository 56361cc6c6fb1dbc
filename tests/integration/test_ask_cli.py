"""`medchat ask` through the real entry point, on the tiny model: JSON shape, profiles, clear errors."""

from __future__ import annotations

import io
import json

import pytest
import torch

from medchat.app.cli import main
from medchat.core.profiles import ProfileStore
from test_engine_support import install, one_torch_thread  # noqa: F401


@pytest.fixture
def ask(capsys, tiny_model_dir):
    """Run `medchat ask QUESTION --base tiny ...`; returns (rc, stdout, stderr)."""
    def run(question, *extra, base=True, short=True):
        argv = ["ask", question]
        if base:
            argv += ["--base", str(tiny_model_dir)]
        if short:
            # a fixed seed: the random tiny model sometimes samples its end token first, an empty reply
            argv += ["--no-kb", "--max-new-tokens", "8", "--system", "Be brief.", "--seed", "1"]
        rc = main(argv + [str(a) for a in extra])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


def one_json(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out  # exactly one JSON object, nothing else on stdout
    return json.loads(lines[0])


def assert_one_line_error(rc, err, *needles, only_line=False):
    """One `medchat: ...` line and no traceback (transformers' own load progress bar may precede it
    when the error comes after the model loaded)."""
    assert rc != 0
    lines = err.strip().splitlines()
    ours = [ln for ln in lines if ln.startswith("medchat:")]
    assert len(ours) == 1 and lines[-1] == ours[0], err
    assert "Traceback" not in err
    if only_line:
        assert lines == ours, err
    for n in needles:
        assert n in ours[0], ours[0]


def test_json_answer_has_the_documented_keys(ask):
    rc, out, _ = ask("hi", "--json")
    assert rc == 0
    data = one_json(out)
    assert {"answer", "profile", "tokens", "timings", "sources", "triage"} <= set(data)
    assert isinstance(data["answer"], str) and data["profile"] == "base" and data["chain"] == []
    assert data["tokens"]["prompt"] > 0 and 0 < data["tokens"]["completion"] <= 8
    assert set(data["timings"]) >= {"load_s", "ttft_s", "total_s", "tokens_per_s"}
    assert data["sources"] == [] and data["triage"] is None
    assert data["stop_reason"] in ("length", "eos", "marker")


def test_same_seed_gives_the_same_sampled_answer(ask):
    runs = [one_json(ask("hi", "--json", "--temperature", "1.0", "--seed", str(s))[1]) for s in (5, 5, 6)]
    assert runs[0]["answer"] == runs[1]["answer"] and runs[0]["tokens"] == runs[1]["tokens"]
    assert runs[0]["profile"] == runs[2]["profile"] == "base"


def test_profile_answers_and_brings_its_own_base(ask, tiny_model_dir, lora_a, lora_b):
    store = ProfileStore()
    install(store, "a", lora_a, tiny_model_dir)
    install(store, "ab", lora_b, tiny_model_dir, chain=["a"])
    rc, out, _ = ask("hi", "--json", "-p", "ab", "--temperature", "0", base=False)  # base from the manifest
    assert rc == 0
    data = one_json(out)
    assert data["profile"] == "ab" and data["chain"] == ["a", "ab"]
    assert data["base"] == str(tiny_model_dir)


def test_emergency_question_carries_triage(ask):
    rc, out, _ = ask("I have crushing chest pain and sweating", "--json")
    data = one_json(out)
    assert rc == 0 and data["triage"] and data["triage"]["category"]
    rc, out, _ = ask("I have crushing chest pain and sweating")
    assert rc == 0 and out.startswith("⚠ ")  # text mode shows the guidance before the answer


def test_text_mode_streams_the_answer_and_reads_stdin(ask, monkeypatch):
    rc, out, _ = ask("hi", "--temperature", "0")
    assert rc == 0
    rc_json, out_json, _ = ask("hi", "--temperature", "0", "--json")
    assert out.strip() == one_json(out_json)["answer"].strip()
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n"))
    rc, out2, _ = ask("-", "--temperature", "0")
    assert rc == 0 and out2 == out


def test_no_fast_uses_transformers(ask):
    rc, out, _ = ask("hi", "--json", "--no-fast")
    assert rc == 0 and one_json(out)["tokens"]["completion"] > 0


def test_unknown_profile_fails_fast_with_one_line(ask):
    rc, out, err = ask("hi", "-p", "unknown")
    assert_one_line_error(rc, err, "unknown profile 'unknown'", only_line=True)  # before any model load
    assert out == ""


def test_reward_profile_is_refused(ask, tiny_model_dir, lora_a):
    install(ProfileStore(), "judge", lora_a, tiny_model_dir, kind="reward")
    rc, _, err = ask("hi", "-p", "judge")
    assert_one_line_error(rc, err, "reward profile")


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question(ask, question):
    rc, _, err = ask(question)
    assert_one_line_error(rc, err, "empty question", only_line=True)


def test_offline_hub_id_gives_the_offline_line(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["ask", "hi", "--base", "some-org/some-model", "--no-kb", "--system", "Be brief."])
    _, err = capsys.readouterr()
    assert_one_line_error(rc, err, "some-org/some-model", "offline", "--base /path/to/model-dir")


def test_missing_local_dir_gives_a_clear_line(ask, tmp_path):
    missing = tmp_path / "no-such-model"
    rc, _, err = ask("hi", "--base", missing, base=False)
    assert_one_line_error(rc, err, str(missing), "does not exist")
    (tmp_path / "not-a-model").mkdir()
    rc, _, err = ask("hi", "--base", tmp_path / "not-a-model", base=False)
    assert_one_line_error(rc, err, "not a Hugging Face model directory")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("flag, needle", [(["--device", "cuda"], "no CUDA GPU"),
                                          (["--load-in-4bit"], "need a CUDA GPU"),
                                          (["--device", "tpu"], "unknown device")])
def test_hardware_flags_without_the_hardware(ask, flag, needle):
    rc, _, err = ask("hi", *flag)
    assert_one_line_error(rc, err, needle)
