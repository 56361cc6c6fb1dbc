"""`medchat bench --only triage`: quality on the held-out test split, model load time (torch imported
first, as chat and `ask` have for the language model) and latency."""

from __future__ import annotations

import statistics
import time


def run() -> dict:
    from medchat.app.triage import Triager
    from medchat.app.triage.corpus import load_rows, select
    from medchat.app.triage.evaluate import evaluate
    from medchat.app.triage.model import TriageModel

    import torch  # noqa: F401  (the encoder runs on torch; chat has imported it already for the model)

    t1 = time.perf_counter()
    model = TriageModel.load()
    load_s = time.perf_counter() - t1
    triager = Triager(model=model)
    rows = select(load_rows(), "test")
    times = []

    def timed(text):
        t = time.perf_counter()
        result = triager.assess(text)
        times.append(time.perf_counter() - t)
        return result

    quality = evaluate(rows, timed)
    out = {"load_s": round(load_s, 3), "encoder": model.encoder is not None,
           "p50_ms": round(statistics.median(times) * 1000, 2),
           "p95_ms": round(sorted(times)[int(len(times) * 0.95)] * 1000, 2),
           "recall": quality["recall"], "false_alarm_rate": quality["false_alarm_rate"]}
    for lang, s in quality["languages"].items():
        out[f"{lang}.recall"] = s["recall"]
        out[f"{lang}.self_harm_recall"] = s["self_harm_recall"]
        out[f"{lang}.false_alarm_rate"] = s["false_alarm_rate"]
    out["misses"] = len(quality["misses"])
    out["false_alarms"] = len(quality["false_alarms"])
    return out
