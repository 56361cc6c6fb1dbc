"""Build medchat's sample training files from the hand-written sources in ./source.

The dialogues, preference pairs and corpus are written once (YAML under source/);
everything else here (alpaca / sharegpt / ranking forms, splits, dataset_info.json)
is derived deterministically, so rerunning this script reproduces the committed files.

    python trainer/samples/build_samples.py          # rewrite the generated files
    python trainer/samples/build_samples.py --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source"
SEED = "medchat-samples-v1"  # changing this reshuffles every split
VAL_FRACTION = 0.10
TEST_FRACTION = 0.10

SYSTEM_PROMPT = (
    "You are a careful, friendly doctor answering health questions in a text chat. "
    "Explain the likely cause, say what to do now, and say when to seek care. "
    "If symptoms could be an emergency, give emergency advice first. "
    "Be honest about uncertainty: you cannot examine the patient, so refer them to a clinician when needed."
)

# Tags shared by every sharegpt-style entry in dataset_info.json.
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}


def clean(text: str) -> str:
    """Collapse the line wrapping of YAML block scalars into single spaces."""
    return " ".join(str(text).split())


def load_dialogues() -> list[dict]:
    """All dialogues, each tagged with its group (file prefix: covid_ or general_)."""
    dialogues = []
    for path in sorted(SOURCE.glob("*.yaml")):
        group = path.stem.split("_", 1)[0]
        if group not in ("covid", "general"):
            continue
        for item in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            turns = [
                {
                    "user": clean(t["user"]),
                    "doctor": clean(t["doctor"]),
                    "rejected": clean(t["rejected"]) if t.get("rejected") else None,
                }
                for t in item["turns"]
            ]
            dialogues.append({"id": item["id"], "group": group, "source": path.name, "turns": turns})
    return dialogues


def load_corpus() -> list[str]:
    paragraphs = []
    for path in sorted(SOURCE.glob("corpus_*.yaml")):
        paragraphs.extend(clean(p) for p in yaml.safe_load(path.read_text(encoding="utf-8")) or [])
    return paragraphs


def _rank_key(dialogue_id: str) -> str:
    # A keyed hash rather than random.shuffle: stable across Python versions and
    # a dialogue keeps its split when others are added.
    return hashlib.sha256(f"{SEED}:{dialogue_id}".encode()).hexdigest()


def split_dialogues(dialogues: list[dict]) -> dict[str, list[dict]]:
    """~80/10/10 split by dialogue, stratified by group so COVID and general both appear in each split."""
    splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for group in sorted({d["group"] for d in dialogues}):
        members = sorted((d for d in dialogues if d["group"] == group), key=lambda d: _rank_key(d["id"]))
        n_val = round(len(members) * VAL_FRACTION)
        n_test = round(len(members) * TEST_FRACTION)
        splits["val"].extend(members[:n_val])
        splits["test"].extend(members[n_val:n_val + n_test])
        splits["train"].extend(members[n_val + n_test:])
    for name in splits:
        splits[name].sort(key=lambda d: _rank_key(d["id"]))
    return splits


def to_alpaca(dialogue: dict) -> dict:
    *earlier, last = dialogue["turns"]
    return {
        "instruction": last["user"],
        "input": "",
        "output": last["doctor"],
        "system": SYSTEM_PROMPT,
        "history": [[t["user"], t["doctor"]] for t in earlier],
    }


def _messages(turns: list[dict]) -> list[dict]:
    out = []
    for t in turns:
        out.append({"from": "human", "value": t["user"]})
        out.append({"from": "gpt", "value": t["doctor"]})
    return out


def to_sharegpt(dialogue: dict) -> dict:
    return {"conversations": _messages(dialogue["turns"]), "system": SYSTEM_PROMPT}


def make_pairs(dialogues: list[dict]) -> list[dict]:
    """One preference pair per turn that has a hand-written rejected reply (COVID dialogues only)."""
    pairs = []
    for d in dialogues:
        if d["group"] != "covid":
            continue
        for i, turn in enumerate(d["turns"]):
            if turn["rejected"]:
                pairs.append({"dialogue": d, "index": i})
    return pairs


def pair_simple(pair: dict) -> dict:
    turns = pair["dialogue"]["turns"]
    i = pair["index"]
    return {
        "prompt": turns[i]["user"],
        "chosen": turns[i]["doctor"],
        "rejected": turns[i]["rejected"],
        "system": SYSTEM_PROMPT,
        "history": [[t["user"], t["doctor"]] for t in turns[:i]],
    }


def pair_sharegpt(pair: dict) -> dict:
    turns = pair["dialogue"]["turns"]
    i = pair["index"]
    return {
        "conversations": _messages(turns[:i]) + [{"from": "human", "value": turns[i]["user"]}],
        "chosen": {"from": "gpt", "value": turns[i]["doctor"]},
        "rejected": {"from": "gpt", "value": turns[i]["rejected"]},
        "system": SYSTEM_PROMPT,
    }


def dataset_info() -> dict:
    alpaca_cols = {"prompt": "instruction", "query": "input", "response": "output",
                   "system": "system", "history": "history"}
    sharegpt_cols = {"messages": "conversations", "system": "system"}
    pair_cols = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected",
                 "system": "system", "history": "history"}
    ranking_cols = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "system": "system"}
    info: dict[str, dict] = {}
    for suffix, split in (("", "train"), ("_val", "val"), ("_test", "test")):
        info[f"covid_sft{suffix}"] = {"file_name": f"covid_alpaca_{split}.json", "formatting": "alpaca",
                                      "columns": dict(alpaca_cols)}
    for suffix, split in (("", "train"), ("_val", "val"), ("_test", "test")):
        info[f"covid_sharegpt{suffix}"] = {"file_name": f"covid_sharegpt_{split}.json", "formatting": "sharegpt",
                                           "columns": dict(sharegpt_cols), "tags": dict(SHAREGPT_TAGS)}
    info["medical_pt"] = {"file_name": "medical_corpus.txt", "columns": {"prompt": "text"}}
    for suffix, split in (("", "train"), ("_val", "val")):
        info[f"covid_pairs{suffix}"] = {"file_name": f"covid_pairs_{split}.jsonl", "ranking": True,
                                        "formatting": "alpaca", "columns": dict(pair_cols)}
    for suffix, split in (("", "train"), ("_val", "val")):
        info[f"covid_ranking{suffix}"] = {"file_name": f"covid_ranking_sharegpt_{split}.json", "ranking": True,
                                          "formatting": "sharegpt", "columns": dict(ranking_cols),
                                          "tags": dict(SHAREGPT_TAGS)}
    # grounded dialogues written by scripts/build_doctor_data.py (the doctor recipe)
    for suffix, split in (("", "train"), ("_val", "val")):
        info[f"doctor_sft{suffix}"] = {"file_name": f"doctor_sft_{split}.json", "formatting": "sharegpt",
                                       "columns": dict(sharegpt_cols), "tags": dict(SHAREGPT_TAGS)}
    return info


def _json(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def render() -> dict[str, str]:
    """Every generated file name -> its exact text."""
    dialogues = load_dialogues()
    splits = split_dialogues(dialogues)
    files: dict[str, str] = {}
    for split, members in splits.items():
        files[f"covid_alpaca_{split}.json"] = _json([to_alpaca(d) for d in members])
        files[f"covid_sharegpt_{split}.json"] = _json([to_sharegpt(d) for d in members])
    # Pairs follow their dialogue's split (val and test dialogues -> pair val), so no
    # conversation is seen in preference training that SFT holds out.
    held_out = {d["id"] for d in splits["val"] + splits["test"]}
    pairs = make_pairs([d for split in ("train", "val", "test") for d in splits[split]])
    pair_splits = {
        "train": [p for p in pairs if p["dialogue"]["id"] not in held_out],
        "val": [p for p in pairs if p["dialogue"]["id"] in held_out],
    }
    for split, members in pair_splits.items():
        files[f"covid_pairs_{split}.jsonl"] = _jsonl(pair_simple(p) for p in members)
        files[f"covid_ranking_sharegpt_{split}.json"] = _json([pair_sharegpt(p) for p in members])
    corpus = load_corpus()
    files["medical_corpus.txt"] = "".join(p + "\n" for p in corpus)
    files["medical_corpus.jsonl"] = _jsonl({"text": p} for p in corpus)
    files["dataset_info.json"] = _json(dataset_info())
    return files


def _write(path: Path, text: str) -> None:
    from medchat.core.paths import atomic_write_text

    atomic_write_text(path, text, mode=0o644)  # shared data files, not private ones


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    files = render()
    stale = [name for name, text in files.items()
             if not (HERE / name).exists() or (HERE / name).read_text(encoding="utf-8") != text]
    if args.check:
        for name in stale:
            print(f"out of date: {name}")
        return 1 if stale else 0
    for name in stale:
        _write(HERE / name, files[name])
    print(f"wrote {len(stale)} of {len(files)} files in {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
