"""`medchat eval mcq FILE`: multiple-choice accuracy per profile (MedQA, MedMCQA, PubMedQA, CMB/CMExam)."""

from __future__ import annotations


from medchat.core.errors import positive_int


def register(modes) -> None:
    from medchat.app.cli.common import add_model_options
    from medchat.app.evaluation.mcq import DEFAULT_SCORE, SCORE_MODES
    from medchat.app.evaluation.mcq_formats import FORMATS

    p = modes.add_parser("mcq", help="multiple-choice accuracy by option log-likelihood",
                         description="Score each option of each question by the model's log-likelihood of "
                                     "the option text after the question (no sampling), pick the best, and "
                                     "report accuracy with a Wilson 95% interval per profile, beside the "
                                     "majority-letter and random-guess baselines.")
    p.add_argument("file", metavar="FILE", help="questions: .json or .jsonl")
    p.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                   help="file format (default: auto, from the first row's fields)")
    p.add_argument("--profiles", required=True, help="comma list of profiles, e.g. base,covid-sft")
    p.add_argument("--limit", type=positive_int, default=None, help="score the first N questions only")
    p.add_argument("--score", default=DEFAULT_SCORE, choices=SCORE_MODES,
                   help=f"option score: mean log-prob per token (length-normalised) or the sum "
                        f"(default: {DEFAULT_SCORE})")
    p.add_argument("--batch-size", type=positive_int, default=8, help="questions per forward pass (default 8)")
    p.add_argument("--json", action="store_true", help="print the result object as JSON")
    add_model_options(p, profile=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from medchat.app.cli.common import load_options, show_result
    from medchat.app.evaluation.mcq import MCQOptions, run_mcq
    from medchat.app.evaluation.runner import parse_profiles

    opts = MCQOptions(file=args.file, profiles=parse_profiles(args.profiles), format=args.format,
                      limit=args.limit, score=args.score, base=args.base, load=load_options(args),
                      batch_size=args.batch_size)
    result = run_mcq(opts)
    return show_result(result, args.json, table, summary_lines)


def table(result: dict):
    from rich.table import Table

    t = Table(title="multiple-choice accuracy")
    for name, justify in (("profile", "left"), ("accuracy", "right"), ("95% CI (Wilson)", "right"), ("n", "right")):
        t.add_column(name, justify=justify)
    for name, m in result["profiles"].items():
        lo, hi = m["ci95"]
        t.add_row(name, f"{m['accuracy']:.4f}", f"{lo:.4f} - {hi:.4f}", str(m["n"]))
    n = next(iter(result["profiles"].values()))["n"] if result["profiles"] else 0
    for key in ("majority", "random"):
        t.add_row(f"({key} baseline)", f"{result['baselines'][key]:.4f}", "", str(n), style="dim")
    return t


def summary_lines(result: dict) -> list[str]:
    base = result.get("base") or {}
    how = "mean log-prob per option token" if result["score"] == "mean" else "summed log-prob of the option"
    lines = [f"file: {result['file']} ({result['format']})",
             f"base: {base.get('name', '-')} (fingerprint {base.get('fingerprint', '-')})",
             f"score: {how}; majority = most frequent gold letter's share, random = mean 1/options"]
    if result.get("skipped_multi_answer"):
        lines.append(f"skipped: {result['skipped_multi_answer']} multi-answer questions (not scored)")
    lines.extend(result.get("notes", []))
    return lines
