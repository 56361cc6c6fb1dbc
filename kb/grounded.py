"""The grounded-answer question set (kb/data/grounded/questions.jsonl) and its train/test split.

Rows are either covered — {"id", "question", "source", "section", "facts", "context"}: the KB file
`source` answers it, an answer should contain ANY of `facts`, and `context` holds earlier user
questions of the same conversation (a follow-up) — or uncovered — {"id", "question", "covered": false}:
no KB file answers it, and the assistant should say so and point to a clinician.

The split is by condition, so a condition's questions never land on both sides: a covered question
is in `test` when int(sha1(source).hexdigest(), 16) % 10 < 3 (about 30% of conditions); an
uncovered one by the sha1 of its id the same way. `train` may be used for training; `test` never is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core.errors import UserError

DEFAULT_FILE = Path(__file__).parent / "data" / "grounded" / "questions.jsonl"
TEMPLATES_FILE = Path(__file__).parent / "data" / "grounded" / "section_templates.json"
SPLITS = ("test", "train", "all")
TEST_BUCKETS = 3  # of 10


@dataclass(frozen=True)
class GroundedQuestion:
    id: str
    question: str
    covered: bool = True
    source: str = ""
    section: str = ""
    facts: tuple[str, ...] = ()
    context: tuple[str, ...] = field(default_factory=tuple)

    @property
    def split_key(self) -> str:
        """What decides the split: the condition (source file), or the id for uncovered questions."""
        return self.source if self.covered else self.id

    @property
    def split(self) -> str:
        return split_of(self.split_key)


def contains_fact(text: str, facts) -> bool:
    """`text` states one of the expected `facts` (case-insensitive substring): a hit."""
    low = (text or "").lower()
    return any(f.lower() in low for f in facts)


def split_of(key: str) -> str:
    return "test" if int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 10 < TEST_BUCKETS else "train"


def _row(obj: dict, where: str) -> GroundedQuestion:
    if not isinstance(obj, dict) or not str(obj.get("id", "")).strip() or not str(obj.get("question", "")).strip():
        raise UserError(f"{where}: a row needs a non-empty 'id' and 'question'")
    if obj.get("covered", True) is False:
        return GroundedQuestion(id=str(obj["id"]), question=obj["question"].strip(), covered=False)
    facts = obj.get("facts")
    if not obj.get("source") or not isinstance(facts, list) or not facts or not all(isinstance(f, str) and f.strip()
                                                                                    for f in facts):
        raise UserError(f"{where}: a covered row needs 'source' and a non-empty list of 'facts' "
                        "(or \"covered\": false)")
    context = obj.get("context") or []
    if not isinstance(context, list) or not all(isinstance(c, str) and c.strip() for c in context):
        raise UserError(f"{where}: 'context' must be a list of earlier questions")
    return GroundedQuestion(id=str(obj["id"]), question=obj["question"].strip(), source=obj["source"],
                            section=obj.get("section", ""), facts=tuple(f.strip() for f in facts),
                            context=tuple(c.strip() for c in context))


def load_questions(path: str | Path | None = None) -> list[GroundedQuestion]:
    """All rows of the file, in order; a bad row is a UserError naming FILE:LINE."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read grounded questions '{path}': {exc.strerror or exc}") from None
    out, seen = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not JSON ({exc.msg})") from None
        q = _row(obj, where)
        if q.id in seen:
            raise UserError(f"{where}: duplicate id '{q.id}'")
        seen.add(q.id)
        out.append(q)
    return out


def select(questions: list[GroundedQuestion], split: str = "test", limit: int | None = None) -> list[GroundedQuestion]:
    """The questions of one split ('all': every one), in file order; with `limit`, the first `limit`
    covered and the first `limit` uncovered ones (so a short run still measures abstention)."""
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    chosen = [q for q in questions if split == "all" or q.split == split]
    if limit is None:
        return chosen
    keep = {q.id for q in [q for q in chosen if q.covered][:limit] + [q for q in chosen if not q.covered][:limit]}
    return [q for q in chosen if q.id in keep]


def section_templates(path: Path = TEMPLATES_FILE) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(section -> question templates with {n} for a condition's name, section -> follow-ups)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data["questions"], data["follow_ups"]


def condition_names(path: Path) -> list[str]:
    """The title and the 'Also called' names of a KB markdown file, lower-cased unless an acronym."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    names = [lines[0].lstrip("# ").strip()]
    for line in lines[1:4]:
        if line.lower().startswith("also called:"):
            names += [n.strip() for n in line.split(":", 1)[1].split(",") if n.strip()]
    return [n if n.isupper() else n.lower() for n in names]
