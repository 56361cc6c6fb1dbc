"""Reading dataset files into (row number, dict) pairs: json, jsonl, csv, parquet, txt.

Row numbers are what a person sees when opening the file: 1-based list index for a JSON list,
the line number for jsonl and txt, the data row (header excluded) for csv/parquet.
Plain text: if the file has blank lines, each blank-line separated block is one document
(numbered by its first line); otherwise each non-empty line is one document.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medchat.core.errors import UserError


def sha256_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _jsonl(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {n}: invalid JSON ({exc.msg}); fix the line or remove it") from None
    return rows


def _json(path: Path, text: str) -> list[tuple[int, dict]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # a .json file that is really JSON lines
            return _jsonl(path, text)
        raise UserError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    if isinstance(data, dict):  # {"data": [...]} or {"train": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UserError(f"{path}: expected a JSON list of rows (or an object holding one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of rows")
    return list(enumerate(data, 1))


def _text(text: str) -> list[tuple[int, dict]]:
    lines = text.splitlines()
    if any(not ln.strip() for ln in lines) and sum(1 for ln in lines if ln.strip()) > 1:
        rows, block, start = [], [], 0
        for n, line in enumerate(lines + [""], 1):
            if line.strip():
                if not block:
                    start = n
                block.append(line)
            elif block:
                rows.append((start, {"text": "\n".join(block)}))
                block = []
        return rows
    return [(n, {"text": ln}) for n, ln in enumerate(lines, 1) if ln.strip()]


def _frame(path: Path, kind: str) -> list[tuple[int, dict]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False) if kind == "csv" else pd.read_parquet(path)
    except Exception as exc:
        raise UserError(f"cannot read {path} as {kind}: {exc}") from None
    records = df.to_dict(orient="records")
    out = []
    for n, rec in enumerate(records, 1):
        clean = {}
        for k, v in rec.items():
            if hasattr(v, "tolist"):  # numpy arrays from parquet list columns
                v = v.tolist()
            if isinstance(v, float) and v != v:  # NaN
                v = ""
            clean[str(k)] = v
        out.append((n, clean))
    return out


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """All rows of one file as (row number, record); UserError naming the file if unreadable."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".csv", ".parquet"):
        return _frame(path, ext[1:])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if ext == ".jsonl":
        return _jsonl(path, text)
    if ext == ".json":
        return _json(path, text)
    if ext == ".txt":
        return _text(text)
    raise UserError(f"{path}: unsupported file type '{ext}'; use json, jsonl, csv, parquet or txt")
