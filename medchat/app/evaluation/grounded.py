"""`medchat eval grounded`: answer the grounded question set through the chat path, score the answers.

Each question is a real chat turn through `medchat.app.session.ChatSession`: triage (on), KB retrieval,
the chat's system prompt and KB prompt, and the engine's own decode path (fast/int8 or float, as the
chat picks; --no-fast forces transformers+peft), greedy (temperature 0). A follow-up's earlier user
questions (`context`) go first as earlier turns: by default each is appended to `session.messages`
with the placeholder assistant reply CONTEXT_PLACEHOLDER instead of generating one (cheaper; the
retrieval query and triage only read user turns); `context_replies=True` generates them for real.

Outputs (staged, renamed into place when complete): predictions.jsonl, metrics.json, report.md,
grounded.png. Metric definitions: medchat.app.evaluation.grounded_metrics.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core import paths
from medchat.core.errors import UserError
from medchat.app.evaluation import grounded_metrics as GM
from medchat.core.models import LoadOptions
from medchat.core.settings import GenerationSettings

OUTPUT_FILES = ("predictions.jsonl", "metrics.json", "report.md", "grounded.png")
CONTEXT_PLACEHOLDER = "(earlier answer omitted)"
METRICS = [("fact_hit_rate", "fact hit"), ("citation_accuracy", "citation accuracy"),
           ("no_citation_rate", "cites nothing"), ("abstention_rate", "abstention (uncovered)"),
           ("false_abstention_rate", "abstention (covered)"), ("model_fact_hit_rate", "fact hit, model's words"),
           ("unsupported_rate", "unsupported specifics"),
           ("retrieval_fact_rate", "fact in passages"), ("key_fact_hit_rate", "fact in key facts"),
           ("words_mean", "words (mean)")]


@dataclass
class GroundedOptions:
    profiles: list[str]
    questions: str | None = None  # default: kb/data/grounded/questions.jsonl
    split: str = "test"
    limit: int | None = None
    kb: str = "default"
    out: str | None = None
    base: str | None = None
    load: LoadOptions = field(default_factory=LoadOptions)
    fast: bool = True
    # chat's own limit: the doctor restates up to six listed lines, which can run past the 160 tokens this
    # once was, and a cut answer is not what a reader of the chat sees
    max_new_tokens: int = GenerationSettings.max_new_tokens
    system: str | None = None
    context_replies: bool = False
    lead: bool = True  # covered answers start with the KB's best sentence, as chat's default (chat.kb_lead)
    triage: object = None  # None: the shipped triager (region from the app config); tests pass a stub
    quiet: bool = False


def _say(o: GroundedOptions, text: str) -> None:
    if not o.quiet:
        print(f"eval grounded: {text}", file=sys.stderr, flush=True)


def _check_kb(name: str) -> None:
    import kb as kbmod

    if name != "default" and name not in {k["name"] for k in kbmod.list_kbs()}:
        raise UserError(f"unknown knowledge base '{name}'; see `medchat kb list` or build one with `medchat kb build`")


def _triager(o: GroundedOptions):
    if o.triage is not None:
        return o.triage
    from medchat.core.config import from_environment
    from medchat.app.triage import load_triager

    config = from_environment()
    return load_triager(config.region, config.emergency_number or None)


def answer(session, q, context_replies: bool = False) -> dict:
    """One question as a chat turn (after its context turns); the raw fields of a predictions row."""
    session.clear()
    for earlier in q.context:
        if context_replies:
            list(session.send(earlier))
        else:
            session.messages.append({"role": "user", "content": earlier})
            session.messages.append({"role": "assistant", "content": CONTEXT_PLACEHOLDER})
    text, sources, stats, triage, key_facts = "", [], None, None, []
    for ev in session.send(q.question):
        if ev.kind == "triage":
            triage = ev.triage
        elif ev.kind == "done":
            text, sources, stats, key_facts = ev.text, ev.sources, ev.stats, ev.key_facts
    triage = triage or session.last_triage
    return {"answer": text, "sources": sources, "stop_reason": getattr(stats, "stop_reason", None),
            "completion_tokens": getattr(stats, "completion_tokens", None),
            "triage": getattr(triage, "category", None) if triage is not None else None,
            "key_facts": [f.sentence for f in key_facts or []], "lead": session.last_lead}


def _row(name: str, q, raw: dict) -> dict:
    from kb.knowledge import passage_dict

    texts = [p.text for p in raw["sources"]]
    row = {"profile": name, "id": q.id, "split": q.split, "covered": q.covered, "question": q.question,
           "context": list(q.context), "answer": raw["answer"]}
    if q.covered:
        row.update(source=q.source, section=q.section, facts=list(q.facts))
    row.update(GM.score_answer(q, raw["answer"], texts, raw.get("key_facts", []), raw.get("lead", "")))
    row.update(sources=[{"n": i, **passage_dict(p, 4)} for i, p in enumerate(raw["sources"], 1)],
               stop_reason=raw["stop_reason"], completion_tokens=raw["completion_tokens"], triage=raw["triage"],
               key_facts=raw.get("key_facts", []))
    return row


def run_grounded(o: GroundedOptions, engine=None) -> dict:
    """Run the evaluation; return the metrics object (also written to metrics.json).

    `engine`: an already built engine (tests); otherwise a ChatEngine for --base is loaded.
    """
    from kb.grounded import load_questions, select
    from medchat.app.evaluation.runner import base_of, check_profiles, out_dir
    from medchat.core.profiles import ProfileStore
    from medchat.app.session import ChatSession

    settings = GenerationSettings().with_value("max_new_tokens", o.max_new_tokens)  # UserError on nonsense
    questions = select(load_questions(o.questions), o.split, o.limit)
    if not questions:
        raise UserError(f"no questions in split '{o.split}'")
    store = ProfileStore()
    profiles = check_profiles(store, o.profiles, reward_hint=False, base=o.base)
    _check_kb(o.kb)
    final = out_dir(o.out, prefix="grounded")
    covered = sum(q.covered for q in questions)
    _say(o, f"{len(questions)} questions ({covered} covered, {len(questions) - covered} uncovered), split {o.split}")
    triager = _triager(o)
    if engine is None:
        from medchat.core.engine import ChatEngine

        engine = ChatEngine(base_of(o.base, profiles), o.load, store=store, fast=o.fast)
    info = dict(engine.info)
    _say(o, f"base {engine.base_name} on {info.get('device')} ({info.get('backend')})")
    rows, per_profile, used = [], {}, None
    for name in o.profiles:
        engine.use(name)
        session = ChatSession(engine, history=None, kb=o.kb, settings=settings, system_prompt=o.system,
                              triage=triager, lead=o.lead)
        session.set("temperature", 0.0)  # overrides win over a profile's own generation settings
        session.set("max_new_tokens", o.max_new_tokens)
        used = session.settings.to_dict()
        t0 = time.perf_counter()
        mine = [_row(name, q, answer(session, q, o.context_replies)) for q in questions]
        _say(o, f"{name}: {len(mine)} answers in {time.perf_counter() - t0:.1f} s")
        per_profile[name] = GM.aggregate(mine)
        rows += mine
    result = {
        "out": str(final),
        "questions": {"file": str(o.questions or _default_file()), "split": o.split, "limit": o.limit,
                      "total": len(questions), "covered": covered, "uncovered": len(questions) - covered},
        "kb": o.kb,
        "base": {"name": engine.base_name, "fingerprint": info.get("fingerprint"), "device": info.get("device"),
                 "dtype": info.get("dtype"), "backend": info.get("backend")},
        "decode": {"backend": info.get("backend"), "mode": info.get("decode_mode"), "no_fast": not o.fast, "greedy": True,
                   "max_new_tokens": o.max_new_tokens, "settings": used,
                   "context_turns": "generated" if o.context_replies else f"placeholder {CONTEXT_PLACEHOLDER!r}",
                   "kb_lead": o.lead,
                   "triage": "on" if o.triage is None else "stub"},
        "unsupported_terms": list(GM.SPECIFIC_TERMS),
        "profiles": per_profile,
    }
    _write(final, result, rows)
    _say(o, f"wrote {final}")
    return result


def _default_file() -> Path:
    from kb.grounded import DEFAULT_FILE

    return DEFAULT_FILE


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if key == "words_mean" else f"{value:.3f}"


def settings_lines(result: dict) -> list[str]:
    q, d, b = result["questions"], result["decode"], result["base"]
    return [f"questions: {q['total']} ({q['covered']} covered, {q['uncovered']} uncovered), split {q['split']}"
            + (f", limit {q['limit']} per kind" if q["limit"] else "") + f"; {q['file']}",
            f"base: {b['name']} (fingerprint {b['fingerprint']}) on {b['device']}, {b['dtype']}",
            f"decode: backend {d['backend']}, mode {d.get('mode')}{' (--no-fast)' if d['no_fast'] else ''}, greedy, "
            f"max {d['max_new_tokens']} new tokens; kb '{result['kb']}'; triage {d['triage']}; "
            f"KB lead sentence {'on' if d.get('kb_lead', True) else 'off (--no-lead)'}; "
            f"context turns: {d['context_turns']}",
            "rates are fractions in [0, 1]; definitions: medchat/app/evaluation/grounded_metrics.py"]


def markdown(result: dict, chart: str) -> str:
    names = list(result["profiles"])
    lines = ["# medchat eval grounded", ""] + [f"- {line}" for line in settings_lines(result)] + [""]
    lines.append("| metric | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    for key, label in METRICS:
        lines.append(f"| {label} | " + " | ".join(fmt(key, result["profiles"][n].get(key)) for n in names) + " |")
    lines += ["", f"![grounded]({Path(chart).name})", "",
              "Unsupported specifics: numbers with units absent from the answer's passages, and these drug/test "
              "names when no passage has them: " + ", ".join(result["unsupported_terms"]) + ".", "",
              "Per-question answers, sources and scores: `predictions.jsonl`."]
    return "\n".join(lines) + "\n"


def _write(final: Path, result: dict, rows: list[dict]) -> None:
    from medchat.app.evaluation import report

    keys = [k for k, _ in METRICS if k != "words_mean"]
    with paths.staging_dir(final) as tmp:
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        chart = report.scores_chart(result, tmp / "grounded.png", keys=keys, labels=dict(METRICS),
                                    title="Grounded answers per profile", ylabel="rate (0-1)")
        (tmp / "report.md").write_text(markdown(result, str(chart)), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
