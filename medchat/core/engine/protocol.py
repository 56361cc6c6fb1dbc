"""The engine contract, torch-free: what the session, the front ends, evaluation, bench and test fakes use.

`Engine.stream` yields the reply's text chunks and returns its `GenerationStats` as the generator's
value (the stream's final event); `collect` drains a stream into (text, stats).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generator, Protocol, runtime_checkable

from medchat.core.profiles import Profile, ProfileStore
from medchat.core.settings import GenerationSettings


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose K/V came from the previous turn
    completion_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    stop_reason: str = ""  # eos | marker | length | cancelled
    text: str = ""

    @property
    def tokens_per_s(self) -> float:
        decode = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("text")
        d["tokens_per_s"] = round(self.tokens_per_s, 2)
        return d


Stream = Generator[str, None, GenerationStats]


def collect(stream: Stream) -> tuple[str, GenerationStats]:
    """Drain a reply stream: (the joined chunks, the stats it returned)."""
    parts = []
    while True:
        try:
            parts.append(next(stream))
        except StopIteration as stop:
            return "".join(parts), stop.value


@runtime_checkable
class Backend(Protocol):
    """A decode path (fast_llama.FastLlama, hf_backend.HFBackend): one KV cache, one adapter chain."""

    kind: str
    device: Any
    cached_ids: list[int]

    def set_chain(self, chain: list[tuple[str, Path]], allow_pickle: bool = False) -> None: ...

    def reset(self) -> None: ...

    def truncate(self, n: int) -> None: ...

    def forward(self, ids: list[int]) -> Any:
        """Feed `ids` after the cached ones; the next token's logits."""


@runtime_checkable
class Engine(Protocol):
    """One resident base model with a hot-swappable profile (medchat.core.engine.ChatEngine)."""

    store: ProfileStore
    profile: Profile
    base_name: str
    info: dict
    context_limit: int
    tokenizer: Any

    def use(self, name: str) -> Profile: ...

    def count_tokens(self, messages: list[dict]) -> int: ...

    def prompt_ids(self, messages: list[dict], max_new_tokens: int = 256) -> list[int]: ...

    def stream(self, messages: list[dict], settings: GenerationSettings | None = None,
               cancel: threading.Event | None = None, lead: str = "") -> Stream: ...

    def generate(self, messages: list[dict], settings: GenerationSettings | None = None) -> str: ...

    def reset(self) -> None:
        """Drop the KV cache: the next prompt is computed from scratch."""

    def hf_model(self) -> Any:
        """The transformers model (with the active adapters) for batched work, or None on other backends."""

    @property
    def stop_ids(self) -> set[int]: ...

    @property
    def device(self) -> Any: ...
