"""Helpers shared by the engine, profile and CLI tests (this module holds no tests itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medchat.core.engine import engine as engine_mod
from medchat.core.engine.protocol import Backend, Engine, collect
from medchat.core.models import fingerprint
from medchat.core.profiles import Profile, ProfileStore
from medchat.core.settings import GenerationSettings

SYSTEM = "Be brief."
QUESTION = "I have a fever and a cough. What should I do?"
MSGS = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
GREEDY = GenerationSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=6)
BACKENDS = {  # name -> (ChatEngine kwargs, expected engine.info["backend"])
    "float": ({"quantize": False}, "fast"),
    "int8": ({"quantize": True}, "fast-int8"),
    "hf": ({"fast": False}, "transformers"),
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core box: several threads per op only spin against other workers
    (measured: 0.5 s with one thread vs 13 s with two under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_engine(model_dir: Path, backend: str = "float", **kw):
    from medchat.core.engine import ChatEngine

    opts, kind = BACKENDS[backend]
    engine = ChatEngine(str(model_dir), store=ProfileStore(), **opts, **kw)
    assert engine.info["backend"] == kind
    assert isinstance(engine, Engine) and isinstance(engine.backend, Backend)  # protocol.py's contract
    return engine


def install(store: ProfileStore, name: str, adapter: Path | None, base_dir: Path, chain=(), **kw) -> Profile:
    prof = Profile(name=name, base=str(base_dir), base_fingerprint=fingerprint(base_dir), chain=list(chain),
                   stage=kw.pop("stage", "sft"), method="lora", **kw)
    return store.install(prof, adapter)


class Trace:
    """Records what an engine generates: every logits vector it sampled from and the token ids."""

    def __init__(self, engine, monkeypatch):
        self.engine = engine
        self.logits: list[torch.Tensor] = []
        self.streams: list = []
        self.stats = None  # GenerationStats of the last run
        inner = engine.backend.forward

        def forward(ids):
            out = inner(ids)
            self.logits.append(out.detach().clone())
            return out

        monkeypatch.setattr(engine.backend, "forward", forward)
        streams = self.streams

        class RecordingStream(engine_mod.TextStream):
            def __init__(self, tok, lead_ids=()):
                super().__init__(tok, lead_ids)
                streams.append(self)

        monkeypatch.setattr(engine_mod, "TextStream", RecordingStream)

    def run(self, messages=MSGS, settings=GREEDY):
        """Generate once; returns (text, token ids, logits list); `self.stats` holds the run's stats."""
        self.logits.clear()
        text, self.stats = collect(self.engine.stream(messages, settings))
        return text, list(self.streams[-1].ids), list(self.logits)


def prefill_logits(engine, messages=MSGS) -> torch.Tensor:
    engine.backend.reset()
    return engine.backend.forward(engine.prompt_ids(messages, GREEDY.max_new_tokens))


def same_logits(xs, ys) -> bool:
    return len(xs) == len(ys) and all(torch.equal(x, y) for x, y in zip(xs, ys))


def reference_logits(model, ids: list[int]) -> torch.Tensor:
    """All positions' logits from a plain transformers forward."""
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def load_hf(model_dir: Path, *adapters: Path):
    """Plain transformers model with each adapter merged in turn (peft's own merge)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for a in adapters:
        model = PeftModel.from_pretrained(model, str(a)).merge_and_unload()
    return model.eval()


# Relative logit error each int8 decode mode must stay under on the tiny random model. Weight-only
# int8 keeps activations float32 (int8w-fp32) or rounds them to bfloat16 per projection
# (int8w-bf16); dynamic int8 (the CPU default, SmoothQuant-calibrated, down_proj float) also
# quantizes activations to int8 per call, so its bound is wider.
INT8_BOUNDS = {"int8w-fp32": 0.05, "int8w-bf16": 0.05, "dynamic-int8": 0.25}
