"""`medchat bench`: every speed figure of the product, measured in one run on this machine."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure speed on this machine (table, or --json)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--base", default=None, help="model to measure (default: the embedded one)")
    p.add_argument("--tokens", type=int, default=128, help="decode length for tok/s")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure (median reported)")
    p.add_argument("--only", default="",
                   help="comma list of sections: decode,under_load,ttft,switch,start,first_answer,kb,sft,triage")
    p.add_argument("--decode-modes", default="",
                   help="comma list of fast-path decode modes to compare (default: all; float is the reference)")
    p.add_argument("--llamacpp-python", default=None, metavar="PATH",
                   help="a Python that can import llama_cpp, for decode.vs_llamacpp (default: this one, if it can)")
    p.add_argument("--kb-chunks", type=int, default=50000)
    p.add_argument("--sft-steps", type=int, default=6)
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.set_defaults(func=run)


def run(args) -> int:
    from medchat.app.bench import run_all

    return run_all(args)
