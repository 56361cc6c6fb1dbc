"""A FakeEngine that follows the engine protocol (no torch, no model) and helpers for chat front-end tests.

Replies are built from the active profile and the last user message, so a test can tell which
profile answered. Stats are fixed numbers (not wall time: 42 tokens/s) so screenshots stay deterministic.
"""

from __future__ import annotations

import asyncio
import threading
import time

from medchat.core.engine.protocol import GenerationStats, collect
from medchat.core.errors import UserError
from medchat.core.profiles import BASE_PROFILE, Profile, ProfileStore


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
        self.tokenizer = None
        self.stop_ids: set[int] = set()
        self.device = "cpu"
        self.profile: Profile = self.store.get(BASE_PROFILE)
        self.calls: list[dict] = []  # (profile, messages) of every stream() call
        self.streaming = threading.Event()  # set while stream() is yielding
        self.gate: threading.Event | None = None  # when given, a reply pauses after its first piece until set

    def use(self, name: str) -> Profile:
        profile = self.store.get(name)
        if profile.kind != "chat":
            raise UserError(f"'{name}' is a {profile.kind} profile: it cannot chat")
        self.profile = profile
        return profile

    def count_tokens(self, messages: list[dict]) -> int:
        return sum(len(m["content"].split()) + 4 for m in messages)

    def prompt_ids(self, messages: list[dict], max_new_tokens: int = 256) -> list[int]:
        return list(range(self.count_tokens(messages)))

    def reset(self) -> None:
        pass

    def hf_model(self):
        return None

    def stream(self, messages, settings=None, cancel=None, lead=""):
        self.calls.append({"profile": self.profile.name, "messages": messages, "lead": lead})
        if self.fail is not None:
            raise self.fail
        question = messages[-1]["content"] if messages else ""
        text = (lead + " " if lead else "") + self.reply(self.profile.name, question.split("Question: ")[-1])
        stats = GenerationStats(prompt_tokens=self.count_tokens(messages))
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
                if self.gate is not None:
                    self.gate.wait(timeout=120)  # a test holds the reply open (no race with its polling)
        finally:
            self.streaming.clear()
        stats.stop_reason, stats.text = reason, "".join(out)
        stats.total_s = max(0, stats.completion_tokens - 1) / 42.0  # tokens_per_s: 42.0
        return stats

    def generate(self, messages, settings=None) -> str:
        return collect(self.stream(messages, settings))[0]


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
