"""`medchat eval mcq` on the tiny model: batched option scores are exact, profiles are active, CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch

from medchat.app.cli import main
from medchat.core.models import LoadOptions, fingerprint
from medchat.core.profiles import Profile, ProfileStore

MEDQA = [
    {"question": "A patient has a fever and a cough. What should they do first?",
     "options": {"A": "Drink fluids and rest.", "B": "Call emergency services.", "C": "Take paracetamol as directed "
                 "on the label.", "D": "Nothing"}, "answer_idx": "A"},
    {"question": "What causes COVID-19?", "options": {"A": "A coronavirus", "B": "Influenza",
                                                     "C": "High blood sugar"}, "answer_idx": "A"},
    {"question": "Chest pain with sweating needs what?", "options": {"A": "Rest", "B": "Emergency care"},
     "answer_idx": "B"},
    {"question": "Hypertension means what?", "options": {"A": "High blood pressure", "B": "High blood sugar",
     "C": "A sore throat", "D": "A virus"}, "answer_idx": "A"},
]
PUBMEDQA = {"7": {"QUESTION": "Does rest help a sore throat?", "CONTEXTS": ["A sore throat often gets better in a "
                                                                            "week.", "Rest and fluids helped."],
                  "final_decision": "yes"},
            "8": {"QUESTION": "Is chest pain harmless?", "CONTEXTS": ["Chest pain needs emergency care."],
                  "final_decision": "no"}}
MEDMCQA = [{"question": "Diabetes means what?", "opa": "High blood sugar", "opb": "A cough", "opc": "A rash",
            "opd": "A fever", "cop": 1}]
CMB = [{"question": "高血压是指什么？", "option": {"A": "血压高", "B": "血糖高", "C": "咳嗽"}, "answer": "A",
        "question_type": "单项选择题"},
       {"question": "哪些是病毒？", "option": {"A": "流感病毒", "B": "冠状病毒"}, "answer": "AB"}]


@pytest.fixture
def setup(tmp_path, tiny_model_dir, lora_a):
    store = ProfileStore()
    fp = fingerprint(tiny_model_dir)
    store.install(Profile(name="p1", base=str(tiny_model_dir), base_fingerprint=fp, stage="sft"), lora_a)
    store.install(Profile(name="rm1", base=str(tiny_model_dir), base_fingerprint=fp, stage="rm", kind="reward"),
                  lora_a)
    files = {"medqa": tmp_path / "medqa.jsonl", "pubmedqa": tmp_path / "pqal.json",
             "medmcqa": tmp_path / "medmcqa.jsonl", "cmb": tmp_path / "cmb.json"}
    files["medqa"].write_text("".join(json.dumps(r) + "\n" for r in MEDQA), encoding="utf-8")
    files["pubmedqa"].write_text(json.dumps(PUBMEDQA), encoding="utf-8")
    files["medmcqa"].write_text(json.dumps(MEDMCQA[0]) + "\n", encoding="utf-8")
    files["cmb"].write_text(json.dumps(CMB, ensure_ascii=False), encoding="utf-8")
    return files


def test_batched_scores_equal_one_sequence_at_a_time(setup, tiny_model_dir):
    from medchat.core.engine import ChatEngine
    from medchat.app.evaluation.mcq import encode_item, option_logprobs
    from medchat.app.evaluation.mcq_formats import load_mcq

    engine = ChatEngine(str(tiny_model_dir), LoadOptions(device="cpu"), fast=False)
    items = load_mcq(setup["medqa"]).items + load_mcq(setup["pubmedqa"]).items
    base = option_logprobs(engine, items, batch_size=3)  # mixed lengths: every batch is left-padded
    model = engine.hf_model()
    for item, scores in zip(items, base):
        prompt, conts = encode_item(engine, item)
        assert engine.tokenizer.decode(prompt).endswith("<|im_start|>assistant\nAnswer:")
        for cont, (total, n) in zip(conts, scores):
            with torch.inference_mode():
                logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + cont])).logits[0].float(), -1)
            expected = sum(float(logp[len(prompt) + t - 1, token]) for t, token in enumerate(cont))
            assert n == len(cont) and total == pytest.approx(expected, abs=1e-4)
    engine.use("p1")
    lora = option_logprobs(engine, items, batch_size=8)
    assert max(abs(a[0] - b[0]) for x, y in zip(base, lora) for a, b in zip(x, y)) > 1e-3  # the adapter is on
    engine.use("base")
    again = option_logprobs(engine, items, batch_size=1)
    assert [s[0] for x in again for s in x] == pytest.approx([s[0] for x in base for s in x], abs=1e-4)


def test_json_end_to_end(setup, tiny_model_dir, capsys):
    argv = ["eval", "mcq", str(setup["medqa"]), "--profiles", "base,p1", "--base", str(tiny_model_dir),
            "--device", "cpu", "--json", "--batch-size", "5"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["profiles"]) == ["base", "p1"] and out["format"] == "medqa" and out["file"] == str(setup["medqa"])
    for m in out["profiles"].values():
        assert m["n"] == 4 and m["accuracy"] * 4 == pytest.approx(round(m["accuracy"] * 4))
        assert 0.0 <= m["ci95"][0] <= m["accuracy"] <= m["ci95"][1] <= 1.0
    assert out["baselines"]["majority"] == 0.75  # three of four golds are A
    assert out["baselines"]["random"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 2 + 1 / 4) / 4)
    assert out["score"] == "mean" and out["base"]["name"]


def test_forced_right_answer_scores_one_with_the_named_profile_active(setup, tiny_model_dir, capsys, monkeypatch):
    import medchat.app.evaluation.mcq as mcq

    seen = []

    def oracle(engine, items, batch_size):  # stands in for the model: the gold option is by far the likeliest
        seen.append((engine.profile.name, engine.hf_model().__class__.__name__, batch_size))
        return [[(-0.1, 1) if letter == it.answer else (-9.0, 1) for letter in it.letters] for it in items]

    monkeypatch.setattr(mcq, "option_logprobs", oracle)
    argv = ["eval", "mcq", str(setup["pubmedqa"]), "--profiles", "p1", "--base", str(tiny_model_dir), "--json",
            "--score", "sum", "--batch-size", "2"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profiles"]["p1"]["accuracy"] == 1.0 and out["profiles"]["p1"]["n"] == 2 and out["score"] == "sum"
    assert seen == [("p1", "PeftModelForCausalLM", 2)]


@pytest.mark.parametrize("fmt", ["medmcqa", "cmb"])
def test_table_output(setup, tiny_model_dir, capsys, fmt):
    argv = ["eval", "mcq", str(setup[fmt]), "--profiles", "base", "--base", str(tiny_model_dir), "--format", fmt]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "multiple-choice accuracy" in shown and "(majority baseline)" in shown and "(random baseline)" in shown
    assert f"({fmt})" in shown
    if fmt == "cmb":
        assert "skipped: 1 multi-answer" in shown


def test_generation_eval_still_needs_its_options(setup, capsys):
    assert main(["eval", "--profiles", "base"]) == 2
    assert "eval needs --profiles and --dataset" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message, code", [
    (["--profiles", "base,nope"], "unknown profile 'nope'", 1),
    (["--profiles", "rm1"], "'rm1' is a reward profile and cannot write replies", 1),
    (["--limit", "0"], "--limit", 2),
    (["--batch-size", "0"], "--batch-size", 2),
])
def test_user_errors(setup, tiny_model_dir, capsys, extra, message, code):
    argv = ["eval", "mcq", str(setup["medqa"]), "--base", str(tiny_model_dir), "--profiles", "base", *extra]
    assert main(argv) == code  # 2: usage, 1: runtime
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "--reward" not in err


def test_bad_row_and_missing_file(setup, tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(MEDQA[0]) + "\n" + json.dumps(dict(MEDQA[1], answer_idx="Q")) + "\n", encoding="utf-8")
    assert main(["eval", "mcq", str(bad), "--profiles", "base", "--base", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"medchat: {bad}:2: answer_idx 'Q' is not one of the options A, B, C"
    assert main(["eval", "mcq", str(tmp_path / "none.json"), "--profiles", "base"]) == 1
    assert capsys.readouterr().err.strip() == f"medchat: {tmp_path / 'none.json'}: no such file"
