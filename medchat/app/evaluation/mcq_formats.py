"""Reading medical multiple-choice files for `medchat eval mcq`: MedQA, MedMCQA, PubMedQA, CMB/CMExam.

Every format becomes a list of `MCQItem`s (question, lettered options, gold letter). Files are one
JSON value (a list of rows, or an object) or JSONL (one row per line). A row that cannot be used
stops the run with one line `FILE:ROW: what is wrong`, where ROW is the line number for JSONL, the
1-based position for a JSON list, and the question id for PubMedQA's id -> row object.

Formats (`--format auto` picks one from the first row's keys):
- medqa: {"question", "options": {"A": text, ...}, "answer_idx": "C"} (MedQA-USMLE JSONL).
- medmcqa: {"question", "opa", "opb", "opc", "opd", "cop"}. `cop` is 1-based (1..4 = A..D) as in the
  released JSON; if any row of the file has cop 0, the whole file is read as 0-based (0..3), as in the
  Hugging Face copy.
- pubmedqa: {id: {"QUESTION", "CONTEXTS": [...], "final_decision": "yes|no|maybe"}}; options are
  A. yes, B. no, C. maybe, and the contexts (joined by newlines) go into the prompt.
- cmb: CMB rows {"question", "option": {"A": text, ...}, "answer": "B"} (options with empty text are
  dropped) or CMExam rows {"Question", "Options": "A text\\nB text", "Answer": "B"}. Multi-answer
  questions ("AB") are skipped and counted, not scored.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core.errors import UserError

FORMATS = ("medqa", "medmcqa", "pubmedqa", "cmb")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PUBMEDQA_OPTIONS = ("yes", "no", "maybe")
_CMEXAM_OPTION = re.compile(r"^\s*([A-Z])(?![A-Za-z])\s*[.:：、．)）]?\s*(.*\S)\s*$")


@dataclass
class MCQItem:
    question: str
    options: list[tuple[str, str]]  # (letter, text), in file order
    answer: str  # the gold letter
    context: str = ""  # PubMedQA abstracts; empty elsewhere
    where: str = ""  # "FILE:ROW"

    @property
    def letters(self) -> list[str]:
        return [letter for letter, _ in self.options]


@dataclass
class MCQSet:
    items: list[MCQItem]
    format: str
    file: str
    skipped_multi_answer: int = 0
    notes: list[str] = field(default_factory=list)

    def baselines(self) -> dict:
        """majority: the most frequent gold letter's share; random: mean chance of a blind guess."""
        n = len(self.items)
        top = Counter(it.answer for it in self.items).most_common(1)[0][1] if n else 0
        return {"majority": top / n if n else 0.0,
                "random": sum(1 / len(it.options) for it in self.items) / n if n else 0.0}


class RowError(ValueError):
    """What is wrong with one row; the reader adds FILE:ROW."""


def load_mcq(path: str | Path, fmt: str = "auto", limit: int | None = None) -> MCQSet:
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be a positive number of questions, got {limit}")
    if fmt != "auto" and fmt not in FORMATS:
        raise UserError(f"unknown --format '{fmt}'; use auto, {', '.join(FORMATS)}")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{path}: no such file")
    if not p.is_file():
        raise UserError(f"{path}: not a file; pass a .json or .jsonl file of questions")
    records = _records(p, str(path))
    if not records:
        raise UserError(f"{path}: no questions in the file")
    if fmt == "auto":
        where, first = records[0]
        if not isinstance(first, dict):
            raise UserError(f"{path}:{where}: expected a JSON object, got {type(first).__name__}")
        fmt = detect(first, str(path))
    parse = {"medqa": _medqa, "medmcqa": _medmcqa, "pubmedqa": _pubmedqa, "cmb": _cmb}[fmt]
    zero_based = fmt == "medmcqa" and any(_int_or_none(r.get("cop")) == 0 for _, r in records if isinstance(r, dict))
    out = MCQSet([], fmt, str(path))
    if zero_based:
        out.notes.append("MedMCQA cop read as 0-based (a row has cop 0)")
    for where, row in records:
        try:
            if not isinstance(row, dict):
                raise RowError(f"expected a JSON object, got {type(row).__name__}")
            item = parse(row, zero_based) if fmt == "medmcqa" else parse(row)
        except RowError as exc:
            raise UserError(f"{path}:{where}: {exc}") from None
        if item is None:  # a multi-answer question
            out.skipped_multi_answer += 1
            continue
        item.where = f"{path}:{where}"
        out.items.append(item)
        if limit and len(out.items) >= limit:
            break
    if not out.items:
        raise UserError(f"{path}: no single-answer questions to score "
                        f"({out.skipped_multi_answer} multi-answer questions skipped)")
    return out


def _records(p: Path, name: str) -> list[tuple[str, object]]:
    """(row label, value) pairs: JSON list, PubMedQA-style id -> row object, one JSON row, or JSONL."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("["):
            raise UserError(f"{name}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        return _jsonl(text, name)
    if isinstance(value, list):
        return [(str(i), row) for i, row in enumerate(value, 1)]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [(str(k), row) for k, row in value.items()]  # keyed by question id (PubMedQA)
    if isinstance(value, dict):
        return [("1", value)]  # a JSONL file of one row
    raise UserError(f"{name}: expected JSON rows (a list, an id -> row object, or JSONL), "
                    f"got a JSON {type(value).__name__}")


def _jsonl(text: str, name: str) -> list[tuple[str, object]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((str(n), json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{name}:{n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def detect(row: dict, name: str) -> str:
    keys = set(row)
    if "options" in keys and "answer_idx" in keys:
        return "medqa"
    if {"opa", "opb", "cop"} <= keys:
        return "medmcqa"
    if "QUESTION" in keys and "final_decision" in keys:
        return "pubmedqa"
    if ("option" in keys and "answer" in keys) or {"Question", "Options", "Answer"} <= keys:
        return "cmb"
    shown = ", ".join(sorted(map(str, keys))[:8]) or "none"
    raise UserError(f"{name}: cannot tell the question format from the first row (keys: {shown}); "
                    f"pass --format {'|'.join(FORMATS)}")


# --- one row of each format ---------------------------------------------------------------------
def _text(row: dict, key: str, what: str = "") -> str:
    if key not in row:
        raise RowError(f"missing '{key}'" + (f" ({what})" if what else ""))
    value = row[key]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
        raise RowError(f"'{key}' must be non-empty text")
    return str(value).strip()


def _int_or_none(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _options_from_dict(value, key: str, drop_empty: bool = False) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or not value:
        raise RowError(f"'{key}' must be an object of lettered options, e.g. {{\"A\": \"...\", \"B\": \"...\"}}")
    out = []
    for letter, text in value.items():
        letter = str(letter).strip().upper()
        if len(letter) != 1 or letter not in LETTERS:
            raise RowError(f"'{key}' has option key '{letter}'; option keys must be single letters A-Z")
        if text is None or (isinstance(text, str) and not text.strip()):
            if drop_empty:
                continue
            raise RowError(f"option {letter} is empty")
        if not isinstance(text, (str, int, float)):
            raise RowError(f"option {letter} must be text")
        out.append((letter, str(text).strip()))
    return out


def _item(question: str, options: list[tuple[str, str]], answer: str, answer_key: str, context: str = "") -> MCQItem:
    if len(options) < 2:
        raise RowError(f"needs at least 2 options, has {len(options)}")
    letters = [letter for letter, _ in options]
    if len(set(letters)) != len(letters):
        raise RowError("two options share a letter")
    if answer not in letters:
        raise RowError(f"{answer_key} '{answer}' is not one of the options {', '.join(letters)}")
    return MCQItem(question, options, answer, context)


def _medqa(row: dict) -> MCQItem:
    question = _text(row, "question", "MedQA rows need question, options, answer_idx")
    options = _options_from_dict(row.get("options"), "options")
    answer = _text(row, "answer_idx", "the gold option's letter").upper()
    return _item(question, options, answer, "answer_idx")


def _medmcqa(row: dict, zero_based: bool) -> MCQItem:
    question = _text(row, "question", "MedMCQA rows need question, opa..opd, cop")
    options = [(letter, _text(row, key)) for letter, key in zip("ABCD", ("opa", "opb", "opc", "opd"))]
    if "cop" not in row:
        raise RowError("missing 'cop' (the correct option's number)")
    cop = _int_or_none(row["cop"])
    low = 0 if zero_based else 1
    if cop is None or not low <= cop < low + len(options):
        raise RowError(f"'cop' must be a number from {low} to {low + len(options) - 1}, got {row['cop']!r}")
    return _item(question, options, "ABCD"[cop - low], "cop")


def _pubmedqa(row: dict) -> MCQItem:
    question = _text(row, "QUESTION", "PubMedQA rows need QUESTION, CONTEXTS, final_decision")
    contexts = row.get("CONTEXTS", [])
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise RowError("'CONTEXTS' must be a list of texts")
    decision = _text(row, "final_decision").lower()
    if decision not in PUBMEDQA_OPTIONS:
        raise RowError(f"'final_decision' must be yes, no or maybe, got '{decision}'")
    options = list(zip("ABC", PUBMEDQA_OPTIONS))
    return _item(question, options, "ABC"[PUBMEDQA_OPTIONS.index(decision)], "final_decision",
                 "\n".join(c.strip() for c in contexts if c.strip()))


def _cmb(row: dict) -> MCQItem | None:
    if "Question" in row and "option" not in row:  # CMExam
        question = _text(row, "Question", "CMExam rows need Question, Options, Answer")
        options = _cmexam_options(row.get("Options"))
        answer, key = _text(row, "Answer", "the gold letters"), "Answer"
    else:
        question = _text(row, "question", "CMB rows need question, option, answer")
        options = _options_from_dict(row.get("option"), "option", drop_empty=True)
        answer, key = _text(row, "answer", "the gold letters"), "answer"
    letters = re.sub(r"[\s,，、;；]", "", answer).upper()
    if not letters.isalpha() or not letters.isascii():
        raise RowError(f"'{key}' must be option letters like 'B' or 'AC', got '{answer}'")
    if len(set(letters)) > 1:
        for letter in letters:  # still check the letters exist, then skip the question
            _item(question, options, letter, key)
        return None
    return _item(question, options, letters[0], key)


def _cmexam_options(value) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return _options_from_dict(value, "Options")
    if not isinstance(value, str) or not value.strip():
        raise RowError("'Options' must be text like 'A first option\\nB second option'")
    out = []
    for line in value.splitlines():
        if not line.strip():
            continue
        m = _CMEXAM_OPTION.match(line)
        if not m:
            raise RowError(f"cannot read the option line '{line.strip()[:40]}' (expected a letter then the text)")
        out.append((m.group(1), m.group(2)))
    return out
