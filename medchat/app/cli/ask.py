"""`medchat ask "QUESTION"`: one answer streamed to stdout, or one JSON object with --json."""

from __future__ import annotations

import json
import sys
import time

from medchat.app.cli.common import (add_generation_options, add_kb_options, add_model_options, app_config, kb_name,
                                    make_engine)

ASK_SETTINGS = ("max_new_tokens", "temperature", "top_p", "seed")


def register(sub) -> None:
    p = sub.add_parser("ask", help="answer one question (for scripts)")
    p.add_argument("question", help="the question; '-' reads it from stdin")
    add_model_options(p)
    add_generation_options(p, names=ASK_SETTINGS)  # defaults: the profile's
    p.add_argument("--system", default=None, help="replace the doctor preset system prompt")
    add_kb_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    p.set_defaults(func=run)


def run(args) -> int:
    from kb.knowledge import passage_dict
    from medchat.core.errors import UsageError
    from medchat.app.context import citation_footer
    from medchat.app.session import ChatSession
    from medchat.app.triage import load_triager, region_for, warm as warm_triage

    question = sys.stdin.read() if args.question == "-" else args.question
    if not question.strip():
        raise UsageError("empty question; pass the question text, or '-' to read it from stdin")
    config = app_config(args)
    region_for(config)  # an unknown region is reported before the model loads
    t0 = time.perf_counter()
    kb_choice = kb_name(args, config)
    if kb_choice is not None:
        import kb as kbmod

        kbmod.warm(kb_choice)  # beside the model load; the first search waits for it
    warm_triage()
    engine = make_engine(args, config)
    load_s = time.perf_counter() - t0
    session = ChatSession(engine, history=None, kb=kb_choice, system_prompt=args.system,
                          triage=load_triager(config.region, config.emergency_number or None),
                          key_facts=config.key_facts, lead=config.kb_lead)
    if args.kb not in (None, "default") and not args.no_kb:
        session.set_kb(args.kb)
    for name in ASK_SETTINGS:
        value = getattr(args, name)
        if value is not None:
            session.set(name, value)
    triage, sources, answer, stats, facts = None, [], "", None, []
    for ev in session.send(question):
        if ev.kind == "triage":
            triage = ev.triage
            if not args.json:
                print(f"⚠ {ev.text}\n", flush=True)
        elif ev.kind == "sources":
            sources = ev.sources
        elif ev.kind == "chunk" and not args.json:
            print(ev.text, end="", flush=True)
        elif ev.kind == "done":
            answer, stats, facts = ev.text, ev.stats, ev.key_facts
    if args.json:
        print(json.dumps({
            "answer": answer,
            "profile": engine.profile.name,
            "chain": list(engine.profile.chain),
            "base": engine.base_name,
            "tokens": {"prompt": stats.prompt_tokens, "completion": stats.completion_tokens},
            "timings": {"load_s": round(load_s, 3), "ttft_s": round(stats.ttft_s, 4),
                        "total_s": round(stats.total_s, 4), "tokens_per_s": round(stats.tokens_per_s, 2)},
            "stop_reason": stats.stop_reason,
            "sources": [passage_dict(p, 4) for p in sources],
            "triage": triage.to_dict() if triage is not None else None,
            "key_facts": [f.to_dict() for f in facts],
        }, ensure_ascii=False))
    else:
        from kb.key_facts import format_block

        footer = citation_footer(sources)
        print(f"\n\n{footer}" if footer else "", flush=True)
        block = format_block(facts)
        if block:
            print(f"\n{block}", flush=True)
    return 0
