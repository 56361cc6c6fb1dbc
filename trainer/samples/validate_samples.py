"""Check medchat's sample training files: they parse, have no empty fields, alternate
human/gpt, keep splits disjoint, match dataset_info.json and are in sync with source/.

    python trainer/samples/validate_samples.py     # prints counts; exit 1 on any problem
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_samples as build  # noqa: E402

HERE = build.HERE
MIN_WORDS, MAX_WORDS = 40, 120  # doctor replies
SPLITS = ("train", "val", "test")


class Problems(list):
    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


def _nonempty_str(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _words(text: str) -> int:
    return len(text.split())


def check_sources(p: Problems) -> dict:
    dialogues = build.load_dialogues()
    ids = [d["id"] for d in dialogues]
    p.check(len(ids) == len(set(ids)), "duplicate dialogue ids in source/")
    openers = [d["turns"][0]["user"].lower() for d in dialogues]
    p.check(len(openers) == len(set(openers)), "two dialogues open with the same user message")
    for d in dialogues:
        p.check(len(d["turns"]) >= 1, f"{d['id']}: no turns")
        for i, t in enumerate(d["turns"]):
            where = f"{d['id']} turn {i + 1}"
            p.check(_nonempty_str(t["user"]) and _nonempty_str(t["doctor"]), f"{where}: empty text")
            n = _words(t["doctor"])
            p.check(MIN_WORDS <= n <= MAX_WORDS, f"{where}: doctor reply has {n} words")
            if t["rejected"]:
                p.check(t["rejected"] != t["doctor"], f"{where}: rejected equals chosen")
                p.check(_words(t["rejected"]) < n, f"{where}: rejected is not shorter than chosen")
    corpus = build.load_corpus()
    p.check(len(corpus) == len(set(corpus)), "duplicate corpus paragraphs")
    for i, para in enumerate(corpus):
        p.check(_nonempty_str(para) and "\n" not in para, f"corpus paragraph {i + 1} empty or multi-line")
    return {"dialogues": dialogues, "corpus": corpus}


def check_conversation(p: Problems, msgs, where: str, ends_with: str) -> None:
    p.check(isinstance(msgs, list) and len(msgs) > 0, f"{where}: empty conversations")
    for j, m in enumerate(msgs or []):
        want = "human" if j % 2 == 0 else "gpt"
        p.check(m.get("from") == want, f"{where}: message {j + 1} is {m.get('from')!r}, expected {want!r}")
        p.check(_nonempty_str(m.get("value")), f"{where}: message {j + 1} empty")
    if msgs:
        p.check(msgs[-1].get("from") == ends_with, f"{where}: last message should be {ends_with!r}")


def check_history(p: Problems, history, where: str) -> None:
    p.check(isinstance(history, list), f"{where}: history is not a list")
    for pair in history or []:
        p.check(isinstance(pair, list) and len(pair) == 2 and all(map(_nonempty_str, pair)),
                f"{where}: bad history entry")


def load(name: str):
    text = (HERE / name).read_text(encoding="utf-8")
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines()]
    return json.loads(text)


def check_generated(p: Problems, counts: dict) -> None:
    stale = [n for n, t in build.render().items()
             if not (HERE / n).exists() or (HERE / n).read_text(encoding="utf-8") != t]
    p.check(not stale, f"generated files out of date (run build_samples.py): {stale}")

    seen: dict[str, str] = {}
    for split in SPLITS:
        alpaca = load(f"covid_alpaca_{split}.json")
        sharegpt = load(f"covid_sharegpt_{split}.json")
        p.check(len(alpaca) == len(sharegpt), f"{split}: alpaca and sharegpt differ in length")
        for k, row in enumerate(alpaca):
            where = f"covid_alpaca_{split}[{k}]"
            for key in ("instruction", "output", "system"):
                p.check(_nonempty_str(row.get(key)), f"{where}: empty {key}")
            p.check(row.get("input") == "", f"{where}: input should be the empty string")
            check_history(p, row.get("history"), where)
        for k, row in enumerate(sharegpt):
            where = f"covid_sharegpt_{split}[{k}]"
            check_conversation(p, row.get("conversations"), where, "gpt")
            p.check(_nonempty_str(row.get("system")), f"{where}: empty system")
            opener = row["conversations"][0]["value"]
            p.check(seen.setdefault(opener, split) == split, f"{where}: dialogue also in split {seen.get(opener)}")
        counts[f"sft_{split}"] = len(alpaca)

    train_prompts = set()
    for split in ("train", "val"):
        simple = load(f"covid_pairs_{split}.jsonl")
        ranking = load(f"covid_ranking_sharegpt_{split}.json")
        p.check(len(simple) == len(ranking), f"pairs {split}: simple and ranking forms differ in length")
        for k, row in enumerate(simple):
            where = f"covid_pairs_{split}[{k}]"
            for key in ("prompt", "chosen", "rejected", "system"):
                p.check(_nonempty_str(row.get(key)), f"{where}: empty {key}")
            p.check(row.get("chosen") != row.get("rejected"), f"{where}: chosen equals rejected")
            check_history(p, row.get("history"), where)
            key = (row["prompt"], json.dumps(row["history"]))
            if split == "train":
                train_prompts.add(key)
            else:
                p.check(key not in train_prompts, f"{where}: same conversation in pairs train")
        for k, row in enumerate(ranking):
            where = f"covid_ranking_sharegpt_{split}[{k}]"
            check_conversation(p, row.get("conversations"), where, "human")
            for key in ("chosen", "rejected"):
                msg = row.get(key) or {}
                p.check(msg.get("from") == "gpt" and _nonempty_str(msg.get("value")), f"{where}: bad {key}")
        counts[f"pairs_{split}"] = len(simple)

    lines = (HERE / "medical_corpus.txt").read_text(encoding="utf-8").splitlines()
    p.check(all(_nonempty_str(line) for line in lines), "medical_corpus.txt has a blank line")
    jsonl = load("medical_corpus.jsonl")
    p.check([r.get("text") for r in jsonl] == lines, "medical_corpus.jsonl differs from medical_corpus.txt")
    counts["corpus_paragraphs"] = len(lines)

    info = load("dataset_info.json")
    for name, entry in info.items():
        path = HERE / entry["file_name"]
        p.check(path.exists(), f"dataset_info {name}: missing file {entry['file_name']}")
        if not path.exists() or path.suffix == ".txt":
            continue
        rows = load(entry["file_name"])
        wanted = {v for k, v in entry.get("columns", {}).items()}
        for k, row in enumerate(rows):
            missing = wanted - set(row)
            p.check(not missing, f"dataset_info {name}: row {k} lacks columns {sorted(missing)}")
            if missing:
                break


def main() -> int:
    p = Problems()
    src = check_sources(p)
    counts: dict = {}
    check_generated(p, counts)
    dialogues = src["dialogues"]
    for group in ("covid", "general"):
        ds = [d for d in dialogues if d["group"] == group]
        multi = sum(len(d["turns"]) > 1 for d in ds)
        turns = sum(len(d["turns"]) for d in ds)
        print(f"{group:8s} dialogues={len(ds)} multi_turn={multi} exchanges={turns}")
    total_turns = sum(len(d["turns"]) for d in dialogues)
    print(f"total    dialogues={len(dialogues)} exchanges={total_turns} messages={2 * total_turns}")
    words = [_words(t["doctor"]) for d in dialogues for t in d["turns"]]
    print(f"doctor reply words: min={min(words)} max={max(words)} mean={sum(words) / len(words):.0f}")
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    for msg in p:
        print("PROBLEM:", msg)
    print("OK" if not p else f"{len(p)} problem(s)")
    return 1 if p else 0


if __name__ == "__main__":
    sys.exit(main())
