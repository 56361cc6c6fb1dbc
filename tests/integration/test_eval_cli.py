"""`medchat eval` end to end on the tiny model: files, one row per profile, and clear user errors."""

from __future__ import annotations

import json

import pytest

from medchat.app.cli import main
from medchat.core.models import fingerprint
from medchat.core.profiles import Profile, ProfileStore

ROWS = [
    {"instruction": "I have a fever and a cough. What should I do?", "input": "", "output": "Drink fluids and rest."},
    {"instruction": "What causes COVID-19?", "input": "", "output": "COVID-19 is caused by a coronavirus."},
    {"instruction": "Is chest pain with sweating serious?", "input": "", "output": "Yes. Call emergency services."},
    {"instruction": "My throat is sore.", "input": "", "output": "It often gets better in a week."},
]


@pytest.fixture
def setup(tmp_path, tiny_model_dir, lora_a):
    data = tmp_path / "tiny_alpaca.json"
    data.write_text(json.dumps(ROWS), encoding="utf-8")
    store = ProfileStore()
    fp = fingerprint(tiny_model_dir)
    store.install(Profile(name="p1", base=str(tiny_model_dir), base_fingerprint=fp, stage="sft"), lora_a)
    store.install(Profile(name="rm1", base=str(tiny_model_dir), base_fingerprint=fp, stage="rm", kind="reward"),
                  lora_a)
    return data


def _args(data, tiny_model_dir, out, *extra):
    return ["eval", "--profiles", "base,p1", "--dataset", str(data), "--base", str(tiny_model_dir), "--limit", "3",
            "--out", str(out), "--max-new-tokens", "8", *extra]


def test_end_to_end_writes_report(setup, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(setup, tiny_model_dir, out)) == 0
    for name in ("predictions.jsonl", "report.md", "metrics.json", "scores.png", "lengths.png"):
        assert (out / name).is_file(), name
    for png in ("scores.png", "lengths.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / png).stat().st_size > 5000
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["profiles"]) == ["base", "p1"]
    assert metrics["dataset"]["samples"] == 3
    assert metrics["generation"]["mode"] == "batched" and metrics["generation"]["temperature"] == 0.0
    assert metrics["bertscore"]["encoder"] == "all-MiniLM-L6-v2" and metrics["bertscore"]["layer"] == 6
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["profile"] for r in rows} == {"base", "p1"}
    for r in rows:
        assert r["reference"] == ROWS[r["index"]]["output"]
        assert r["prompt"][-1] == {"role": "user", "content": ROWS[r["index"]]["instruction"]}
        assert r["completion_tokens"] <= 8 and r["prompt_tokens"] > 0 and r["reference_tokens"] > 0
    for name, m in metrics["profiles"].items():
        mine = [r for r in rows if r["profile"] == name]
        lens = sorted(r["prediction_tokens"] for r in mine)
        assert m["reply_tokens_mean"] == pytest.approx(sum(lens) / 3) and m["reply_tokens_median"] == lens[1]
        assert m["rouge1"] == pytest.approx(sum(r["rouge1"] for r in mine) / 3, abs=1e-5)
        for key in ("rouge1", "rouge2", "rougeL", "bleu4", "bertscore_precision", "bertscore_recall", "bertscore_f1"):
            assert 0.0 <= m[key] <= 1.0
    report = (out / "report.md").read_text()
    assert "| base |" in report and "| p1 |" in report and "layer 6 of 6" in report and "scores.png" in report
    shown = capsys.readouterr().out
    assert "BERTScore F1" in shown and "p1" in shown and f"{out}/report.md" in shown


def test_json_output_and_reward(setup, tiny_model_dir, tmp_path, capsys, monkeypatch):
    import medchat.app.evaluation.reward as reward

    class LengthScorer:  # stands in for trainer.reward_model's scorer: reward = reply length in characters
        def score(self, conversations):
            import torch

            return torch.tensor([float(len(c[-1]["content"])) for c in conversations])

    monkeypatch.setattr(reward, "load_reward_scorer", lambda name: LengthScorer())
    out = tmp_path / "out-json"
    assert main(_args(setup, tiny_model_dir, out, "--json", "--reward", "rm1", "--sequential", "--idf")) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["reward"] == {"profile": "rm1"} and printed["generation"]["mode"] == "sequential"
    assert printed["bertscore"]["idf"] is True
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for name in ("base", "p1"):
        lengths = [len(r["prediction"]) for r in rows if r["profile"] == name]
        assert printed["profiles"][name]["reward_mean"] == pytest.approx(sum(lengths) / len(lengths))
    assert "reward" in (out / "report.md").read_text()


@pytest.mark.parametrize("extra, message, code", [
    (["--profiles", "base,nope"], "unknown profile 'nope'", 1),
    (["--limit", "0"], "--limit", 2),
    (["--reward", "p1"], "not a reward model", 1),
    (["--profiles", "rm1"], "cannot write replies", 1),
    (["--batch-size", "0"], "--batch-size", 2),
])
def test_user_errors(setup, tiny_model_dir, tmp_path, capsys, extra, message, code):
    assert main(_args(setup, tiny_model_dir, tmp_path / "o", *extra)) == code  # 2: usage, 1: runtime
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_empty_dataset_is_a_user_error(setup, tiny_model_dir, tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert main(_args(empty, tiny_model_dir, tmp_path / "o")) == 1
    assert "no samples to evaluate" in capsys.readouterr().err
