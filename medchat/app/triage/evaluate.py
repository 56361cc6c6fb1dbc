"""Triage quality on a corpus split: recall per language (overall and self-harm), false alarms on
ordinary messages, category agreement, and every miss and false alarm with its family."""

from __future__ import annotations

from typing import Callable

from medchat.app.triage.corpus import Row


def evaluate(rows: list[Row], decide: Callable[[str], object]) -> dict:
    """`decide(text)` returns a Triage (its `.emergency`, `.category`); rows are one or more splits."""
    by_lang: dict[str, dict] = {}
    misses, false_alarms = [], []
    for r in rows:
        t = decide(r.text)
        s = by_lang.setdefault(r.lang, {"emergency": 0, "caught": 0, "self_harm": 0, "self_harm_caught": 0,
                                        "ordinary": 0, "false_alarms": 0, "category_right": 0})
        if r.emergency:
            s["emergency"] += 1
            s["self_harm"] += r.category == "self_harm"
            if t.emergency:
                s["caught"] += 1
                s["self_harm_caught"] += r.category == "self_harm"
                s["category_right"] += t.category == r.category
            else:
                misses.append({"family": r.family, "category": r.category, "text": r.text, "score": round(t.score, 3)})
        else:
            s["ordinary"] += 1
            if t.emergency:
                s["false_alarms"] += 1
                false_alarms.append({"family": r.family, "said": t.category, "text": r.text, "score": round(t.score, 3),
                                     "evidence": list(t.evidence)[:1]})
    langs = {}
    for lang, s in sorted(by_lang.items()):
        langs[lang] = {
            "emergencies": s["emergency"], "recall": _ratio(s["caught"], s["emergency"]),
            "self_harm": s["self_harm"], "self_harm_recall": _ratio(s["self_harm_caught"], s["self_harm"]),
            "ordinary": s["ordinary"], "false_alarm_rate": _ratio(s["false_alarms"], s["ordinary"]),
            "category_agreement": _ratio(s["category_right"], s["caught"]),
        }
    total_e = sum(s["emergency"] for s in by_lang.values())
    total_o = sum(s["ordinary"] for s in by_lang.values())
    return {
        "recall": _ratio(sum(s["caught"] for s in by_lang.values()), total_e),
        "false_alarm_rate": _ratio(sum(s["false_alarms"] for s in by_lang.values()), total_o),
        "emergencies": total_e, "ordinary": total_o, "languages": langs,
        "misses": misses, "false_alarms": false_alarms,
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def format_report(result: dict, title: str) -> str:
    lines = [f"{title}: recall {result['recall']}, false alarms {result['false_alarm_rate']} "
             f"({result['emergencies']} emergencies, {result['ordinary']} ordinary)"]
    for lang, s in result["languages"].items():
        lines.append(f"  {lang}: recall {s['recall']} of {s['emergencies']}, self-harm {s['self_harm_recall']} of "
                     f"{s['self_harm']}, false alarms {s['false_alarm_rate']} of {s['ordinary']}, "
                     f"category agreement {s['category_agreement']}")
    for m in result["misses"]:
        lines.append(f"  MISS [{m['family']}] ({m['score']}) {m['text']}")
    for f in result["false_alarms"]:
        lines.append(f"  FALSE ALARM [{f['family']}] -> {f['said']} ({f['score']}) {f['text']}")
    return "\n".join(lines)
