"""`medchat kb ...`: build, add, remove, list, info, search, eval, fit-intent, fit-ranker and bench knowledge bases."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from medchat.core.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("kb", help="build and search local knowledge bases",
                              description="Local knowledge bases the chat cites from. 'default' ships with "
                                          "medchat and is built on first use.")
    sub = p.add_subparsers(dest="kb_command", metavar="COMMAND", required=True)

    b = sub.add_parser("build", help="build (or rebuild) a KB from files and folders")
    b.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (md, txt, html, json, jsonl, csv, pdf)")
    b.add_argument("--name", help="KB name (default: the name of the first PATH)")
    b.add_argument("--embedder", help="sentence-transformers folder or id (default: all-MiniLM-L6-v2)")
    b.add_argument("--text-field", help="JSON/JSONL field holding the text (default: text, content or body)")
    b.set_defaults(func=cmd_build)

    a = sub.add_parser("add", help="add new or changed files to a KB")
    a.add_argument("paths", nargs="+", metavar="PATH")
    a.add_argument("--name", default="default", help="KB name (default: default)")
    a.add_argument("--embedder", help="refuse to add unless the KB was built with this embedder")
    a.add_argument("--text-field", help="JSON/JSONL field holding the text")
    a.set_defaults(func=cmd_add)

    r = sub.add_parser("remove", help="remove one source file from a KB")
    r.add_argument("source", metavar="SOURCE", help="the source as `kb info` lists it, e.g. notes/flu.md")
    r.add_argument("--name", default="default")
    r.set_defaults(func=cmd_remove)

    ls = sub.add_parser("list", help="list knowledge bases")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    i = sub.add_parser("info", help="show a KB's embedder, index and sources")
    i.add_argument("--name", default="default")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    s = sub.add_parser("search", help="hybrid (dense + BM25) search")
    s.add_argument("query", metavar="QUERY")
    s.add_argument("--kb", default="default", help="KB name (default: default)")
    s.add_argument("--k", type=int, default=5, help="number of passages (default: 5)")
    s.add_argument("--embedder", help="refuse unless the KB was built with this embedder")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)

    e = sub.add_parser("eval", help="retrieval recall@k on question sets")
    e.add_argument("--kb", default="default")
    e.add_argument("--k", type=int, default=5)
    e.add_argument("--questions", nargs="*", metavar="PATH", help="JSONL files or folders (default: bundled sets)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    fi = sub.add_parser("fit-intent", help="refit the section re-ranker on the grounded questions' train split",
                        description="Fits the head that predicts which section (Treatment, Diagnosis, ...) a "
                                    "question asks about, on the train split of the grounded question set and "
                                    "the section templates filled with train-split conditions of the default "
                                    "KB, saves it, and reports on the test split how often the first passage "
                                    "holds an expected fact without and with it.")
    _fit_arguments(fi, "the head (default: the one search uses)")
    fi.set_defaults(func=cmd_fit_intent)

    fr = sub.add_parser("fit-ranker", help="refit the key-fact sentence ranker on the grounded questions' train split",
                        description="Fits the logistic regression that ranks the passages' sentences for the "
                                    "prompt's list and the 'From the knowledge base' block, on the train split "
                                    "of the grounded question set retrieved from the KB, saves it, and reports "
                                    "how often an expected fact is among the first 1-4 sentences in "
                                    "cross-validation grouped by condition.")
    _fit_arguments(fr, "the ranker (default: the one the chat uses)")
    fr.set_defaults(func=cmd_fit_ranker)

    bn = sub.add_parser("bench", help="measure build throughput and query latency on synthetic chunks")
    bn.add_argument("--chunks", type=int, default=50_000, help="index size for query latency")
    bn.add_argument("--queries", type=int, default=50)
    bn.add_argument("--embed-chunks", type=int, default=2_000,
                    help="chunks embedded for real to measure build speed (the rest get synthetic vectors)")
    bn.add_argument("--json", action="store_true")
    bn.set_defaults(func=cmd_bench)


# ---------------------------------------------------------------- helpers

def _fit_arguments(parser, saved: str) -> None:
    """The options every head fitted on the grounded questions takes."""
    parser.add_argument("--kb", default="default", help="KB whose embedder and passages are used (default: default)")
    parser.add_argument("--questions", metavar="PATH", help="grounded question file (default: the bundled set)")
    parser.add_argument("--out", metavar="PATH", help=f"where to save {saved}")
    parser.add_argument("--json", action="store_true")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=not stderr)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise UserError(f"{flag} must be at least 1 (got {value})")
    return value


def _progress():
    """A progress callback drawing a bar on stderr while chunks are embedded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=_console(stderr=True), transient=True)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("embed", total=total)
        bar.update(task, completed=done)
        if done >= total:
            bar.stop()
            task = None

    return update


def _report(console, verb: str, name: str, report: dict) -> None:
    console.print(f"{verb} KB '{name}': {report['added']} added, {report.get('updated', 0)} updated, "
                  f"{report['skipped']} unchanged, {report['unreadable']} unreadable "
                  f"({report['chunks']} new chunks)")
    for source, why in report.get("problems", []):
        console.print(f"  [yellow]skipped[/] {source}: {why}", markup=True)


def default_name(path: str) -> str:
    p = Path(path).expanduser().resolve()
    stem = p.name if p.is_dir() else p.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:64]
    return name or "kb"


# ---------------------------------------------------------------- handlers

def cmd_build(args) -> int:
    from kb.knowledge import KnowledgeBase

    name = args.name or default_name(args.paths[0])
    kb = KnowledgeBase.build(args.paths, name, embedder=args.embedder, text_field=args.text_field,
                             progress=_progress())
    _report(_console(), "built", name, kb.last_report)
    return 0


def cmd_add(args) -> int:
    from kb.knowledge import KnowledgeBase

    kb = KnowledgeBase.open(args.name, embedder=args.embedder)
    report = kb.add(args.paths, text_field=args.text_field, progress=_progress())
    _report(_console(), "updated", args.name, report)
    return 0 if report["added"] or report["updated"] or report["skipped"] else 1


def cmd_remove(args) -> int:
    from kb.knowledge import KnowledgeBase

    kb = KnowledgeBase.open(args.name)
    if args.source not in kb.manifest["sources"]:
        raise UserError(f"KB '{args.name}' has no source '{args.source}'; "
                        f"see the sources with `medchat kb info --name {args.name}`")
    removed = kb.remove(args.source)
    _console().print(f"removed {args.source} from KB '{args.name}' ({removed} chunks)")
    return 0


def cmd_list(args) -> int:
    from kb import list_kbs

    kbs = list_kbs()
    if args.json:
        _print_json(kbs)
        return 0
    from rich.table import Table

    table = Table("name", "sources", "chunks", "index", "embedder", "updated")
    for e in kbs:
        if e.get("error"):
            table.add_row(e["name"], "-", "-", "-", f"damaged: {e['error']}", "-")
        elif not e["built"]:
            table.add_row(e["name"], "-", "-", "-", "-", "built on first use")
        else:
            table.add_row(e["name"], str(e["sources"]), str(e["chunks"]), e["index"] or "-", e["embedder"], e["updated"])
    _console().print(table)
    return 0


def cmd_info(args) -> int:
    from kb.knowledge import KnowledgeBase

    info = KnowledgeBase.open(args.name).info()
    if args.json:
        _print_json(info)
        return 0
    from rich.table import Table

    console = _console()
    for key in ("name", "path", "embedder", "dim", "index", "chunks", "sources", "created", "updated"):
        console.print(f"[bold]{key}[/]: {info[key]}")
    table = Table("source", "chunks", "added")
    for f in info["files"]:
        table.add_row(f["source"], str(f["chunks"]), f["added"])
    console.print(table)
    return 0


def cmd_search(args) -> int:
    from kb.knowledge import KnowledgeBase

    _positive(args.k, "--k")
    passages = KnowledgeBase.open(args.kb, embedder=args.embedder).search(args.query, k=args.k)
    if args.json:
        from kb.knowledge import passage_dict

        _print_json([{**passage_dict(p, 6), "similarity": round(p.similarity, 4)} for p in passages])
        return 0
    console = _console()
    if not passages:
        console.print("no matching passages")
        return 0
    from rich.table import Table

    table = Table("#", "source", "section", "score", "cos", "text", show_lines=True)
    for n, p in enumerate(passages, 1):
        snippet = p.text if len(p.text) <= 300 else p.text[:297] + "..."
        table.add_row(str(n), p.source, p.section or "-", f"{p.score:.4f}", f"{p.similarity:.2f}", snippet)
    console.print(table)
    return 0


def cmd_eval(args) -> int:
    from kb.quality import recall_at_k

    _positive(args.k, "--k")
    result = recall_at_k(k=args.k, kb=args.kb, questions=args.questions or None)
    if args.json:
        _print_json(result)
        return 0
    console = _console()
    console.print(f"recall@{result['k']} on KB '{args.kb}': {result['recall']:.3f} "
                  f"({result['hits']}/{result['questions']} questions); "
                  f"facts found in passages: {result['fact_recall']:.3f}")
    for miss in result["misses"][:10]:
        console.print(f"  [yellow]miss[/] {miss['question']} -> expected {miss['expected']}, "
                      f"got {', '.join(miss['got']) or 'nothing'}", markup=True)
    return 0


def cmd_fit_intent(args) -> int:
    from kb import section_intent
    from kb.grounded import condition_names, load_questions, section_templates, select, split_of
    from kb.knowledge import DEFAULT_DATA, KnowledgeBase

    questions = load_questions(args.questions)
    base = KnowledgeBase.open(args.kb)
    conditions = {p.name: condition_names(p) for p in sorted(DEFAULT_DATA.glob("*.md")) if split_of(p.name) == "train"}
    head = section_intent.fit(select(questions, "train"),
                              section_intent.template_questions(conditions, *section_templates()))
    out = Path(args.out) if args.out else section_intent.MODEL_FILE
    head.save(out)
    result = {"saved": str(out), "classes": list(head.classes), **head.meta,
              "test": section_intent.measure(base, select(questions, "test"), head)}
    if args.json:
        _print_json(result)
        return 0
    t = result["test"]
    _console().print(f"fitted on {head.meta['questions']} train questions, saved {out}\n"
                     f"test split ({t['questions']} covered questions): fact in the first passage "
                     f"{t['first_plain']:.3f} -> {t['first_head']:.3f}, in any passage {t['any_plain']:.3f} -> "
                     f"{t['any_head']:.3f}", markup=False, highlight=False)
    return 0


def cmd_fit_ranker(args) -> int:
    import kb
    from kb import sentence_ranker
    from kb.grounded import load_questions, select

    questions = select(load_questions(args.questions), "train")
    kb.KnowledgeBase.open(args.kb)  # a clear error for an unknown KB before any work
    ranker = sentence_ranker.fit(questions, lambda query: kb.retrieve(query, kb=args.kb), kb.embedder_for(args.kb))
    out = sentence_ranker.save(ranker, Path(args.out) if args.out else None)
    if args.json:
        _print_json({"saved": str(out), **ranker})
        return 0
    cv = ranker["cross_validated"]
    _console().print(f"fitted on {ranker['questions']} train questions, saved {out}\n"
                     f"cross-validated: fact among the first 1/2/3/4 sentences for "
                     f"{cv['top1']:.3f} / {cv['top2']:.3f} / {cv['top3']:.3f} / {cv['top4']:.3f}", markup=False,
                     highlight=False)
    return 0


def cmd_bench(args) -> int:
    from kb.bench import run

    result = run(n_chunks=_positive(args.chunks, "--chunks"), n_queries=_positive(args.queries, "--queries"),
                 embed_chunks=_positive(args.embed_chunks, "--embed-chunks"))
    if args.json:
        _print_json(result)
        return 0
    console = _console()
    for key, value in result.items():
        console.print(f"{key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with only the `kb` command (tests; `python -m kb.cli`)."""
    parser = argparse.ArgumentParser(prog="medchat")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


if __name__ == "__main__":  # pragma: no cover - convenience entry point
    ns = build_parser().parse_args()
    try:
        raise SystemExit(ns.func(ns))
    except UserError as exc:
        print(f"medchat: {exc}", file=sys.stderr)
        raise SystemExit(exc.code)
