"""`medchat train` and `medchat data` subcommands. `register(subparsers)`; handlers `(args) -> int`.

    medchat train [RECIPE.yaml] --stage pt|sft --method lora|qlora [--base MODEL | --from PROFILE [--continue]]
                  --dataset NAME_OR_PATH[,...] [--dataset-dir DIR] --name PROFILE [--learning-rate 1e-4 ...]
    medchat train --resume [RUN_DIR] --name PROFILE        # continue an interrupted run
    medchat train recipe NAME_OR_YAML [overrides...]       # multi-stage recipes (trainer.recipes)
    medchat data check DATASET [--dataset-dir DIR] [--rows 3] [--base MODEL] [--stage sft]

Heavy imports (torch, transformers) happen inside the handlers, so `--help` stays fast; the TUI is
never imported.
"""

from __future__ import annotations

import argparse

from medchat.core.errors import UsageError
from trainer.config import add_flags, gate_remote_code, load_config, overrides_from_args
from trainer.stages import STAGE_NAMES

EPILOG = """examples:
  medchat train --stage sft --dataset covid_sft --name covid-sft
  medchat train --stage sft --method qlora --dataset covid_sft,covid_sharegpt --name covid-q --lora-r 16
  medchat train --stage sft --from covid-sft --dataset my.jsonl --name covid-sft2
  medchat train my_recipe.yaml --learning-rate 1e-4 --set lora.dropout=0
  medchat train recipe covid --ppo-kl-coef 0.1
  medchat data check covid_sft --rows 2
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="fine-tune a LoRA/QLoRA adapter and install it as a profile",
                              description="Fine-tune a LoRA/QLoRA adapter locally and install it as a profile. "
                                          "A recipe YAML gives defaults; flags override it.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="*", metavar="RECIPE",
                   help="a recipe YAML for one stage, or `recipe NAME_OR_YAML` for a multi-stage recipe")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_flags(p)
    p.set_defaults(func=cmd_train)

    d = subparsers.add_parser("data", help="inspect training data")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    c = dsub.add_parser("check", help="parse a dataset and preview formatting and the loss mask of a few rows")
    c.add_argument("dataset", help="a name in dataset_info.json or a file path")
    c.add_argument("--dataset-dir", default=None, help="folder with dataset_info.json (default: trainer/samples)")
    c.add_argument("--rows", type=int, default=3, help="rows to preview (default 3)")
    c.add_argument("--base", default=None, help="model whose tokenizer and chat template to use")
    c.add_argument("--stage", default="sft", choices=list(STAGE_NAMES))
    c.add_argument("--cutoff-len", type=int, default=1024)
    c.add_argument("--template", default="", help="chat template override (Jinja text or file)")
    c.add_argument("--train-on-prompt", action="store_true")
    c.add_argument("--last-turn-only", action="store_true")
    c.set_defaults(func=cmd_data_check)
    d.set_defaults(func=lambda args: (d.print_help(), 2)[1])


def cmd_train(args) -> int:
    target = list(args.target or [])
    is_recipe = bool(target) and target[0] == "recipe"
    overrides = overrides_from_args(args, scoped_ok=is_recipe)
    remote_code_flag = getattr(args, "cfg__model__trust_remote_code", None) is True  # given on this command line
    if is_recipe:
        if len(target) != 2:
            raise UsageError("usage: medchat train recipe NAME_OR_YAML [options]")
        from trainer import recipes

        profiles = recipes.run(target[1], overrides, quiet=args.quiet, remote_code_flag=remote_code_flag)
        if profiles and all(p is None for p in profiles):  # a non-main rank: the main one reports
            return 0
        names = ", ".join(p.name for p in profiles or [])
        print(f"recipe {target[1]} done: installed {names or 'nothing'}")
        return 0
    if len(target) > 1:
        raise UsageError(f"expected at most one recipe file, got: {' '.join(target)}; "
                        "for a multi-stage recipe use `medchat train recipe NAME`")
    cfg = load_config(target[0] if target else None, overrides)
    gate_remote_code([cfg], remote_code_flag)
    if not cfg.data.datasets and not cfg.training.resume:
        raise UsageError("no dataset given; pass --dataset NAME_OR_PATH (e.g. --dataset covid_sft)")
    if cfg.training.resume and "stage" not in overrides:
        from trainer.runs import Run

        run = Run.for_resume(cfg)  # `--resume RUN` alone: the run knows its own stage
        if run is not None:
            cfg.stage = run.config().stage
    from trainer.stages import run_stage

    run_stage(cfg, quiet=args.quiet)
    return 0


def cmd_data_check(args) -> int:
    from trainer.data.check import check

    if args.rows < 0:
        raise UsageError("--rows must be >= 0")
    return check(args.dataset, args.dataset_dir, rows=args.rows, base=args.base, stage=args.stage,
                 cutoff_len=args.cutoff_len, template=args.template, train_on_prompt=args.train_on_prompt,
                 last_turn_only=args.last_turn_only)
