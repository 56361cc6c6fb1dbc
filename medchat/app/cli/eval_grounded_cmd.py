"""`medchat eval grounded`: fact hits, citations and abstention of chat answers on the grounded question set."""

from __future__ import annotations


from medchat.core.errors import positive_int
from medchat.core.settings import GenerationSettings


def register(modes) -> None:
    from medchat.app.cli.common import add_model_options

    p = modes.add_parser("grounded", help="grounded answers: fact hits, citation accuracy, abstention",
                         description="Ask each question of the grounded set (kb/data/grounded/questions.jsonl) "
                                     "as a real chat turn (triage, KB retrieval, chat prompt, greedy decoding) "
                                     "per profile, and report the fact-hit rate, citation accuracy, abstention "
                                     "on questions the KB does not cover, answers citing nothing, unsupported "
                                     "specifics and answer length. Writes predictions.jsonl, metrics.json, "
                                     "report.md and grounded.png to --out.")
    p.add_argument("--profiles", default="base", help="comma list of profiles, e.g. base,doctor (default: base)")
    p.add_argument("--split", default="test", choices=("test", "train", "all"),
                   help="conditions split 30/70 by a hash of the source file (default: test)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="ask the first N covered and the first N uncovered questions only")
    p.add_argument("--questions", default=None, metavar="FILE", help="question file (default: the shipped set)")
    p.add_argument("--kb", default="default", help="knowledge base to retrieve from (default: the built-in one)")
    p.add_argument("--max-new-tokens", type=int, default=GenerationSettings.max_new_tokens,
                   help="per answer (default: as chat, %(default)s)")
    p.add_argument("--system", default=None, help="replace the chat's system prompt")
    p.add_argument("--no-lead", action="store_true",
                   help="let the model write the whole answer (default: a covered answer starts with the KB's "
                        "best sentence, as chat does; config chat.kb_lead)")
    p.add_argument("--context-replies", action="store_true",
                   help="generate replies for a follow-up's earlier turns (default: a placeholder reply)")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/grounded-<timestamp> in the cache dir or MEDCHAT_HOME)")
    p.add_argument("--json", action="store_true", help="print the metrics object as JSON")
    add_model_options(p, profile=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from medchat.app.cli.common import load_options, show_result
    from medchat.app.evaluation.grounded import GroundedOptions, run_grounded
    from medchat.app.evaluation.runner import parse_profiles

    opts = GroundedOptions(profiles=parse_profiles(args.profiles), questions=args.questions, split=args.split,
                           limit=args.limit, kb=args.kb, out=args.out, base=args.base, load=load_options(args),
                           fast=not args.no_fast, max_new_tokens=args.max_new_tokens, system=args.system,
                           context_replies=args.context_replies, lead=not args.no_lead)
    result = run_grounded(opts)
    from medchat.app.evaluation.grounded import settings_lines

    return show_result(result, args.json, table,
                       lambda r: [*settings_lines(r), f"report: {r['out']}/report.md"])


def table(result: dict):
    """Metrics as rows, profiles side by side."""
    from medchat.app.evaluation.grounded import METRICS, fmt
    from medchat.app.evaluation.report import profiles_table

    q = result["questions"]
    return profiles_table(f"grounded answers ({q['covered']} covered, {q['uncovered']} uncovered; split {q['split']})",
                          result["profiles"], METRICS, fmt)
