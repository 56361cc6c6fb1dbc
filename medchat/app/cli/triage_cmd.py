"""`medchat triage TEXT|-`: show the red-flag decision, category, score and evidence for messages.

`--rebuild` refits the shipped model from the team corpus; `--eval SPLIT` reports quality on a split.
"""

from __future__ import annotations

import json
import sys

from medchat.core.errors import UsageError, UserError


def register(sub) -> None:
    p = sub.add_parser("triage", help="check messages for red flags (decision, category, score, evidence)",
                       description="Judge each message as the chat would before answering. '-' reads messages "
                                   "from stdin, one per line; --conversation judges them as one conversation.")
    p.add_argument("text", nargs="*", help="the message, or '-' for stdin (one message a line)")
    p.add_argument("--json", action="store_true", help="one JSON object per message, in order")
    p.add_argument("--conversation", action="store_true",
                   help="treat the messages as consecutive user turns of one conversation")
    p.add_argument("--region", default=None, help="region code for the numbers (default: config.toml's, else auto)")
    p.add_argument("--rebuild", action="store_true", help="refit the shipped model from the team corpus (about 35 min on 2 cores)")
    p.add_argument("--eval", metavar="SPLIT", choices=("train", "dev", "test"), default=None,
                   help="report recall and false alarms on a corpus split (test: reporting only)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.rebuild:
        return _rebuild()
    if args.eval:
        return _evaluate(args)
    messages = _messages(args.text)
    from medchat.core.config import from_environment
    from medchat.app.triage import Triager, load_model, region, region_for

    config = from_environment()
    where = region(args.region) if args.region else region_for(config)
    triager = Triager(model=load_model(), region=where)
    recent: list[str] = []
    for text in messages:
        if args.conversation:
            result = triager.assess_turn(text, recent)
            recent.append(text)
        else:
            result = triager.assess(text)
        if args.json:
            print(json.dumps({"text": text, **result.to_dict()}, ensure_ascii=False), flush=True)
        else:
            print(_line(text, result), flush=True)
    return 0


def _messages(text: list[str]) -> list[str]:
    if text == ["-"]:
        lines = [line.rstrip("\n") for line in sys.stdin]
        messages = [m for m in lines if m.strip()]
        if not messages:
            raise UserError("no messages on stdin; pipe one message a line")
        return messages
    joined = " ".join(text)
    if not joined.strip():
        raise UsageError("no message given; pass the text, or '-' to read messages from stdin")
    return [joined]


def _line(text: str, t) -> str:
    head = text if len(text) <= 70 else text[:67] + "..."
    if not t.emergency:
        return f"ok         score {t.score:.2f}  {head}"
    flag = "EMERGENCY" + (" (shown already)" if t.repeat else "")
    lines = [f"{flag}  {t.category}  score {t.score:.2f}  via {t.source}  {head}"]
    lines += [f"    evidence: {e}" for e in t.evidence]
    label = "    guidance: "
    lines.append(label + t.guidance.replace("\n", "\n" + " " * len(label)))  # crisis lines under the steps
    return "\n".join(lines)


def _rebuild() -> int:
    from medchat.app.triage.build import build

    build(log=lambda line: print(line, file=sys.stderr))
    print("triage model rebuilt; report it on the held-out split with `medchat triage --eval test`", file=sys.stderr)
    return 0


def _evaluate(args) -> int:
    from medchat.app.triage import Triager, load_model
    from medchat.app.triage.corpus import load_rows, select
    from medchat.app.triage.evaluate import evaluate, format_report

    triager = Triager(model=load_model())
    result = evaluate(select(load_rows(), args.eval), triager.assess)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_report(result, f"triage on {args.eval}"))
    return 0
