"""The team-written triage corpus and its split into train / dev / test by paraphrase family.

Every message belongs to a family (one situation told several ways). The split is a pure function of
the family ids, fixed before any rule or model was fitted: within each (file, language, label, category)
stratum families are ordered by a hash of their id; the first quarter goes to test, the next sixth to
dev, the rest to train. So no test message has a sibling in training, every stratum has a test family,
and adding a file of new families never moves an old one. The test split is only ever used for reporting.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from medchat.core.errors import UserError

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "corpus"
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Row:
    family: str
    lang: str
    emergency: bool
    category: str  # emergency category, or the nearest topic for ordinary messages
    text: str
    register: str = ""
    kind: str = ""
    split: str = ""
    source: str = ""  # the corpus file


def load_rows(folder: Path | None = None) -> list[Row]:
    """Every corpus row, each tagged with its family's split."""
    folder = Path(folder or CORPUS_DIR)
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    rows.append(Row(family=d["family"], lang=d["lang"], emergency=d["label"] == "emergency",
                                    category=d["category"], text=d["text"], register=d.get("register", ""),
                                    kind=d.get("kind", ""), source=path.name))
                except (ValueError, KeyError, TypeError) as exc:
                    raise UserError(f"{path}:{n}: not a corpus row ({exc})") from exc
    splits = assign_splits(rows)
    return [Row(**{**r.__dict__, "split": splits[r.family]}) for r in rows]


def _stratum(row: Row) -> tuple[str, str, bool, str]:
    return row.source, row.lang, row.emergency, row.category


def assign_splits(rows: list[Row]) -> dict[str, str]:
    """family -> split; a family's stratum is that of its first row."""
    strata: dict[tuple, list[str]] = {}
    seen: set[str] = set()
    for r in rows:
        if r.family not in seen:
            seen.add(r.family)
            strata.setdefault(_stratum(r), []).append(r.family)
    out = {}
    for families in strata.values():
        ordered = sorted(families, key=lambda f: hashlib.sha1(f.encode()).hexdigest())
        n = len(ordered)
        n_test = max(1, round(n / 4))
        n_dev = max(1, round(n / 6)) if n >= 3 else 0
        for i, fam in enumerate(ordered):
            out[fam] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return out


def head_labels(rows: list[Row], classes: list[str]):
    """What each model head learns from the rows, one rule for the n-gram and encoder fits alike:
    emergency (bool), self-harm (bool: an emergency of that category) and the category's index in
    `classes` (-100 for ordinary messages, which teach the category head nothing)."""
    import numpy as np

    emergency = np.array([r.emergency for r in rows], dtype=bool)
    self_harm = np.array([r.emergency and r.category == "self_harm" for r in rows], dtype=bool)
    category = np.array([classes.index(r.category) if r.emergency else -100 for r in rows], dtype=np.int64)
    return emergency, self_harm, category


def select(rows: list[Row], *splits: str) -> list[Row]:
    return [r for r in rows if r.split in splits]
