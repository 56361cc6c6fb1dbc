"""Red-flag triage before any model output: rules (high precision) beside a learned model (recall on
wording nobody here wrote), judged per message and per conversation. See docs/ARCHITECTURE.md.

    from medchat.app.triage import load_triager
    t = load_triager(region="UK").assess_turn("it started an hour ago", recent=["my chest hurts"])
"""

from __future__ import annotations

import threading

from medchat.app.triage.decide import Triage, Triager
from medchat.app.triage.guidance import CATEGORIES, disclaimer, region

__all__ = ["CATEGORIES", "Triage", "Triager", "disclaimer", "load_model", "load_triager", "region", "region_for",
           "triage", "warm"]

_lock = threading.Lock()
_model = None


def load_model():
    """The shipped model, loaded once per process."""
    global _model
    with _lock:
        if _model is None:
            from medchat.app.triage.model import TriageModel

            _model = TriageModel.load()
        return _model


def warm() -> threading.Thread:
    """Start loading the shipped model in a background thread, beside the language model's load (the
    encoder's weights take ~0.3 s); `load_model` then waits for it. A failure here is left for the
    caller's own `load_model` to raise."""

    def job():
        try:
            load_model()
        except Exception:  # noqa: BLE001 - reported by the foreground load
            pass

    thread = threading.Thread(target=job, name="triage-warm", daemon=True)
    thread.start()
    return thread


def region_for(config):
    """The region of an AppConfig; an unknown code is a UserError naming the choices."""
    return region(config.region, config.emergency_number or None)


def load_triager(region_code: str | None = None, emergency_number: str | None = None) -> Triager:
    """A fresh conversation-level triager with the shipped model and the region's numbers."""
    return Triager(model=load_model(), region=region(region_code, emergency_number))


def triage(text: str) -> Triage:
    """One message on its own, with the default region."""
    return Triager(model=load_model()).assess(text)
