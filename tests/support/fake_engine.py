"""A FakeEngine with ChatEngine's interface (no torch, no model) and helpers for chat front-end tests.

Replies are built from the active profile and the last user message, so a test can tell which
profile answered. Stats are fixed numbers (not wall time) so screenshots stay deterministic.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from medchat.core.errors import UserError
from medchat.core.profiles import BASE_PROFILE, Profile, ProfileStore


@dataclass
class FakeStats:
    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    stop_reason: str = ""
    text: str = ""

    @property
    def tokens_per_s(self) -> float:
        return 42.0 if self.completion_tokens else 0.0

    def to_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "stop_reason": self.stop_reason, "tokens_per_s": self.tokens_per_s}


def default_reply(profile: str, question: str) -> str:
    return (f"**{profile}** answers: {question}\n\n- rest and drink fluids\n- see a clinician if it gets worse\n\n"
            "```\ncode block\n```\n")


class FakeEngine:
    def __init__(self, store: ProfileStore | None = None, delay: float = 0.0, reply=default_reply,
                 fail: Exception | None = None, context_limit: int = 2048):
        self.store = store or ProfileStore()
        self.delay = delay
        self.reply = reply
        self.fail = fail  # raised from stream() to test failure handling
        self.context_limit = context_limit
        self.base_name = "fake-base"
        self.info = {"name": "fake-base", "device": "cpu", "dtype": "float32", "backend": "fake"}
        self.profile: Profile = self.store.get(BASE_PROFILE)
        self.last = FakeStats()
        self.calls: list[dict] = []  # (profile, messages) of every stream() call
        self.streaming = threading.Event()  # set while stream() is yielding

    def use(self, name: str) -> Profile:
        profile = self.store.get(name)
        if profile.kind != "chat":
            raise UserError(f"'{name}' is a {profile.kind} profile: it cannot chat")
        self.profile = profile
        return profile

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, settings=None, cancel=None):
        self.calls.append({"profile": self.profile.name, "messages": messages})
        if self.fail is not None:
            raise self.fail
        question = messages[-1]["content"] if messages else ""
        text = self.reply(self.profile.name, question.split("Question: ")[-1])
        stats = FakeStats(prompt_tokens=self.count_tokens(messages))
        self.last = stats
        out, reason = [], "eos"
        self.streaming.set()
        try:
            for piece in _pieces(text):
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                if self.delay:
                    time.sleep(self.delay)
                out.append(piece)
                stats.completion_tokens += 1
                yield piece
        finally:
            self.streaming.clear()
        stats.stop_reason, stats.text = reason, "".join(out)

    def generate(self, messages, settings=None) -> str:
        return "".join(self.stream(messages, settings))


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def install_fake_profiles(store: ProfileStore) -> ProfileStore:
    """Two chat profiles (one stacked on the other) and a reward profile, manifests only."""
    store.install(Profile(name="covid-sft", base="fake-base", stage="sft", method="lora",
                          datasets=[{"name": "covid-qa", "sha256": "ab12", "rows": 120}],
                          metrics={"eval_loss": 1.23}, description="COVID answers"), adapter_src=None)
    store.install(Profile(name="covid-dpo", base="fake-base", stage="dpo", method="lora", chain=["covid-sft"],
                          datasets=[{"name": "covid-pairs", "sha256": "cd34", "rows": 40}],
                          metrics={"reward_acc": 0.8}), adapter_src=None)
    store.install(Profile(name="judge-rm", base="fake-base", stage="rm", kind="reward"), adapter_src=None)
    return store


def fake_triage(text: str):
    """Chest pain -> an emergency notice, otherwise None (stands in for medchat.app.triage)."""
    if "chest pain" not in text.lower():
        return None

    class T:
        category = "cardiac"
        guidance = "Chest pain can be an emergency: call your local emergency number now."
        language = "en"
        matched = ["chest pain"]

        def to_dict(self):
            return {"category": self.category, "guidance": self.guidance, "matched": self.matched}

    return T()


async def wait_until(predicate, timeout: float = 60.0, pilot=None, interval: float = 0.02) -> None:
    """Poll `predicate` (letting the app run) until it is true; fail the test after `timeout`.

    The timeout is generous on purpose: it only bounds a hang, and a busy CI machine is slow."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")
        if pilot is not None:
            await pilot.pause(interval)
        else:
            await asyncio.sleep(interval)
