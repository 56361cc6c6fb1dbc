"""Retrieval quality: recall@k of question sets against a KB.

A question set is JSONL, one object a line:
    {"question": "...", "source": "covid-19.md", "facts": ["...", ...]}
A hit means the expected source file is among the sources of the top-k passages. `fact_recall` is
the share of `facts` found (case-insensitively) in the text of those passages.
"""

from __future__ import annotations

import json
from pathlib import Path

from medchat.core.errors import UserError

QUESTIONS_DIR = Path(__file__).parent / "data" / "questions"


def load_questions(questions=None) -> list[dict]:
    """Questions from JSONL files and/or folders of them (default: kb/data/questions/)."""
    if questions is None:
        questions = [QUESTIONS_DIR]
    elif isinstance(questions, (str, Path)):
        questions = [questions]
    files: list[Path] = []
    for item in questions:
        p = Path(item)
        if p.is_dir():
            files += sorted(p.glob("*.jsonl"))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"question set not found: {p}")
    out = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                q = json.loads(line)
                out.append({"question": str(q["question"]), "source": str(q["source"]),
                            "facts": [str(x) for x in q.get("facts", [])], "file": f.name})
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{f}:{n} is not a question line ({exc}); each line needs "
                                "'question' and 'source'") from exc
    if not out:
        raise UserError(f"no questions found in {', '.join(map(str, files or questions))}")
    return out


def _same_source(passage_source: str, expected: str) -> bool:
    # question sets name the file; a KB built from a folder may hold it in a sub-folder
    return passage_source == expected or Path(passage_source).name == Path(expected).name


def recall_at_k(k: int = 5, kb: str = "default", questions=None) -> dict:
    from kb.knowledge import KnowledgeBase

    items = load_questions(questions)
    base = KnowledgeBase.open(kb)
    hits = facts_total = facts_found = 0
    by_set: dict[str, dict] = {}
    misses = []
    for q in items:
        passages = base.search(q["question"], k=k)
        got = [p.source for p in passages]
        hit = any(_same_source(s, q["source"]) for s in got)
        hits += hit
        stats = by_set.setdefault(q["file"], {"questions": 0, "hits": 0})
        stats["questions"] += 1
        stats["hits"] += hit
        text = " ".join(p.text for p in passages).lower()
        facts_total += len(q["facts"])
        facts_found += sum(f.lower() in text for f in q["facts"])
        if not hit:
            misses.append({"question": q["question"], "expected": q["source"], "got": list(dict.fromkeys(got))})
    for stats in by_set.values():
        stats["recall"] = round(stats["hits"] / stats["questions"], 4)
    return {"k": k, "kb": kb, "questions": len(items), "hits": hits, "recall": round(hits / len(items), 4),
            "fact_recall": round(facts_found / facts_total, 4) if facts_total else 0.0,
            "by_set": by_set, "misses": misses}
