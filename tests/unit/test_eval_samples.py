"""Eval samples from every dataset layout the trainer reads: reference = last reply, prompt = the rest."""

from __future__ import annotations

import json

import pytest

from medchat.core.errors import UserError
from medchat.app.evaluation.samples import load_samples


def _write(path, data, jsonl=False):
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in data) if jsonl else json.dumps(data, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_alpaca_file(tmp_path):
    f = _write(tmp_path / "a.json", [{"instruction": "What helps a cold?", "input": "", "output": "Rest and fluids."},
                                     {"instruction": "Is a fever bad?", "input": "38 C", "output": "Usually not."}])
    samples, info = load_samples(f)
    assert [s.reference for s in samples] == ["Rest and fluids.", "Usually not."]
    assert samples[0].prompt == [{"role": "user", "content": "What helps a cold?"}]
    assert samples[1].prompt[-1]["content"] == "Is a fever bad?\n38 C"
    assert info["samples"] == 2


def test_sharegpt_multi_turn_keeps_history_and_system(tmp_path):
    conv = {"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "I have a cough."}, {"from": "gpt", "value": "For how long?"},
        {"from": "human", "value": "Two days."}, {"from": "gpt", "value": "Rest; see a doctor if it lasts."}]}
    samples, _ = load_samples(_write(tmp_path / "s.json", [conv]))
    s = samples[0]
    assert s.reference == "Rest; see a doctor if it lasts."
    assert [m["role"] for m in s.prompt] == ["system", "user", "assistant", "user"]
    assert s.prompt[0]["content"] == "Be brief." and s.prompt[-1]["content"] == "Two days."


def test_chatdoctor_and_jsonl(tmp_path):
    rows = [{"instruction": "If you are a doctor, please answer.", "input": f"Question {i}?", "output": f"Answer {i}."}
            for i in range(3)]
    samples, _ = load_samples(_write(tmp_path / "cd.json", rows))
    assert samples[2].reference == "Answer 2." and samples[2].prompt[-1]["content"].startswith("Question 2")
    samples, _ = load_samples(_write(tmp_path / "m.jsonl", rows, jsonl=True))
    assert len(samples) == 3


def test_registry_name_with_limit_and_system():
    samples, info = load_samples("covid_sft_test", limit=4, system="You are a doctor.")
    assert len(samples) == 4 and info["name"] == "covid_sft_test"
    assert all(s.reference.strip() for s in samples)
    assert all(s.prompt[0]["role"] == "system" and s.prompt[-1]["role"] == "user" for s in samples)


def test_sharegpt_registry_entry():
    samples, _ = load_samples("covid_sharegpt_test", limit=3)
    assert len(samples) == 3
    assert all(s.prompt[-1]["role"] == "user" and s.reference.strip() for s in samples)


@pytest.mark.parametrize("limit", [0, -3])
def test_bad_limit(limit):
    with pytest.raises(UserError, match="--limit"):
        load_samples("covid_sft_test", limit=limit)


def test_empty_dataset(tmp_path):
    with pytest.raises(UserError, match="no samples to evaluate"):
        load_samples(_write(tmp_path / "empty.json", []))
