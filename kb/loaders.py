"""Turn files into `Document`s: Markdown, text, HTML, JSON/JSONL, CSV/TSV and PDF.

A loader raises `LoadError` for a file it cannot read; the caller reports it and goes on.
Each document keeps its `source` (path relative to the folder it was found in, POSIX style) so
passages can be cited, and a list of (section, text) blocks so chunks keep their section.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TEXT_FIELDS = ("text", "content", "body")
TITLE_FIELDS = ("title", "name", "condition", "disease", "topic", "question")
SUPPORTED_SUFFIXES = {
    ".md": "markdown", ".markdown": "markdown",
    ".txt": "text", ".text": "text", ".rst": "text",
    ".html": "html", ".htm": "html",
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".csv": "csv", ".tsv": "csv",
    ".pdf": "pdf",
}
_ALIASES = re.compile(r"^\s*(?:also called|also known as|aka)\s*:\s*(.+)$", re.IGNORECASE)


class LoadError(Exception):
    """A file that could not be turned into documents; the message says why."""


@dataclass
class Document:
    source: str
    title: str
    blocks: list[tuple[str, str]]  # (section, text), in reading order
    aliases: list[str] = field(default_factory=list)
    record: int = 0  # row/record number inside a multi-document file (CSV, JSONL)


@dataclass
class SourceFile:
    path: Path
    source: str  # relative name used for citations and `remove`


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def discover(paths) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Expand files and folders (recursively; hidden entries skipped) into source files.

    Returns (files, problems). Sources are relative to the folder given, or the bare file name for
    a file given directly. Unsupported types and missing paths become problems, not exceptions.
    """
    files: list[SourceFile] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for raw in [paths] if isinstance(paths, (str, Path)) else paths:
        root = Path(raw).expanduser()
        if not root.exists():
            problems.append((str(raw), "no such file or folder"))
            continue
        if root.is_dir():
            found = sorted(p for p in root.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(root).parts))
            pairs = [(p, p.relative_to(root).as_posix()) for p in found]
        else:
            pairs = [(root, root.name)]
        for path, source in pairs:
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                problems.append((source, f"unsupported file type '{path.suffix or path.name}'"))
                continue
            if source in seen and seen[source].resolve() != path.resolve():
                problems.append((source, f"another file is already named '{source}' in this run; "
                                         "add them from one common folder"))
                continue
            if source not in seen:
                seen[source] = path
                files.append(SourceFile(path, source))
    return files, problems


def load_file(path: Path, source: str, text_field: str | None = None) -> list[Document]:
    kind = SUPPORTED_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise LoadError(f"unsupported file type '{Path(path).suffix}'")
    try:
        if kind == "pdf":
            docs = _load_pdf(Path(path), source)
        else:
            text = _read_text(Path(path))
            if kind == "markdown":
                docs = [parse_markdown(text, source)]
            elif kind == "text":
                docs = [Document(source, _title_from_name(source), [("", text)])]
            elif kind == "html":
                docs = [_load_html(text, source)]
            elif kind in ("json", "jsonl"):
                docs = _load_json(text, source, text_field, lines=(kind == "jsonl"))
            else:
                docs = _load_csv(text, source, delimiter="\t" if path.suffix.lower() == ".tsv" else None)
    except LoadError:
        raise
    except (OSError, ValueError) as exc:  # decoding/parsing failures of a damaged file
        raise LoadError(f"could not read: {exc}") from exc
    docs = [d for d in docs if any(t.strip() for _, t in d.blocks)]
    if not docs:
        raise LoadError("no text found" + (" (a scanned PDF without a text layer?)" if kind == "pdf" else ""))
    return docs


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise LoadError("looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # old Windows exports; never fails


def _title_from_name(source: str) -> str:
    stem = Path(source).stem.replace("_", " ").replace("-", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else source


def parse_markdown(text: str, source: str) -> Document:
    """`# H1` is the title, each `## H2` starts a section; headings inside code blocks are ignored."""
    from markdown_it import MarkdownIt

    lines = text.splitlines()
    headings = [(tok.tag, tok.map[0], tok.map[1]) for tok in MarkdownIt("commonmark").parse(text)
                if tok.type == "heading_open" and tok.tag in ("h1", "h2") and tok.map]
    title, aliases, blocks = "", [], []
    section, start = "", 0

    def flush(end: int):
        body = "\n".join(lines[start:end]).strip()
        if body:
            blocks.append((section, body))

    for tag, first, last in headings:
        heading = _heading_text(lines[first:last])
        if tag == "h1" and not title:
            flush(first)
            title, start = heading, last
            continue
        if tag == "h1":
            continue  # a second H1 is kept as text of the current section
        flush(first)
        section, start = heading, last
    flush(len(lines))
    # "Also called: a, b" right under the title names aliases; they help matching by any name.
    if blocks and blocks[0][0] == "":
        kept = []
        for line in blocks[0][1].splitlines():
            m = _ALIASES.match(line)
            if m:
                aliases += [a.strip() for a in re.split(r"[,;]", m.group(1)) if a.strip()]
            else:
                kept.append(line)
        rest = "\n".join(kept).strip()
        blocks = ([("", rest)] if rest else []) + blocks[1:]
    return Document(source, title or _title_from_name(source), blocks, aliases)


def _heading_text(lines: list[str]) -> str:
    if len(lines) >= 2 and set(lines[-1].strip()) <= {"=", "-"}:
        return " ".join(lines[:-1]).strip()  # setext heading
    return re.sub(r"\s#+\s*$", "", lines[0].strip().lstrip("#")).strip()


_BLOCK_TAGS = {"p", "div", "li", "tr", "br", "section", "article", "h3", "h4", "h5", "h6", "pre",
               "blockquote", "dd", "dt", "td", "th", "table", "ul", "ol", "header", "footer"}


def _load_html(text: str, source: str) -> Document:
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise LoadError(f"could not parse HTML: {exc}") from exc
    # code, styling and site chrome (menus, side bars, forms) are not content
    for bad in root.xpath("//script|//style|//noscript|//template|//svg|//iframe|//nav|//aside"
                          "|//form|//button|//head/*[not(self::title)]"):
        bad.drop_tree()
    head_title = (root.findtext(".//title") or "").strip()
    # Rebuild the page as Markdown-like lines so the Markdown section splitter can be reused.
    out: list[str] = []

    def walk(el) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in ("h1", "h2"):
            words = " ".join(el.text_content().split())
            if words:
                out.append(f"\n\n{'#' if tag == 'h1' else '##'} {words}\n\n")
        elif tag and tag != "title":
            if tag in _BLOCK_TAGS:
                out.append("\n")
            out.append(el.text or "")
            for child in el:
                walk(child)
            if tag in _BLOCK_TAGS:
                out.append("\n")
        if el.tail:
            out.append(el.tail)

    body_el = root.find("body")
    walk(body_el if body_el is not None else root)
    body = re.sub(r"[ \t]+", " ", "".join(out))
    body = re.sub(r"\n\s*\n+", "\n\n", body)
    doc = parse_markdown(body, source)
    if doc.title == _title_from_name(source) and head_title:
        doc.title = head_title
    return doc


def _pick(record: dict, names) -> str | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, (str, int, float)) and str(value).strip():
            return str(value).strip()
    return None


def _load_json(text: str, source: str, text_field: str | None, lines: bool) -> list[Document]:
    if lines:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LoadError(f"line {n} is not valid JSON: {exc.msg}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        if isinstance(data, dict):
            lists = [v for k, v in data.items() if isinstance(v, list) and k in ("documents", "data", "items", "records")]
            records = lists[0] if lists else [data]
        else:
            records = data if isinstance(data, list) else [data]
    fields = (text_field,) if text_field else DEFAULT_TEXT_FIELDS
    docs = []
    for n, rec in enumerate(records):
        if isinstance(rec, str):
            body, title = rec, None
        elif isinstance(rec, dict):
            body, title = _pick(rec, fields), _pick(rec, TITLE_FIELDS)
        else:
            continue
        if body:
            section = str(rec.get("section", "")) if isinstance(rec, dict) else ""
            docs.append(Document(source, title or f"{_title_from_name(source)} #{n + 1}", [(section, body)], record=n))
    if records and not docs:
        named = ", ".join(json.dumps(f, ensure_ascii=False) for f in fields)  # escaped: a field name may hold "\r"
        raise LoadError(f"no record has a text field ({named}); choose one with --text-field")
    return docs


def _load_csv(text: str, source: str, delimiter: str | None) -> list[Document]:
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise LoadError(f"not a valid CSV file: {exc}") from exc
    docs = []
    for n, row in enumerate(rows):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in row.items()
                 if k is not None and v is not None and str(v).strip()]
        if not pairs:
            continue
        lowered = {k.lower(): v for k, v in pairs}
        title = _pick(lowered, TITLE_FIELDS) or pairs[0][1]
        body = "\n".join(f"{k}: {v}" for k, v in pairs)
        docs.append(Document(source, title, [("", body)], record=n))
    return docs


def _load_pdf(path: Path, source: str) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("the PDF is password-protected")
        pages = [(f"page {i}", page.extract_text() or "") for i, page in enumerate(reader.pages, 1)]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise LoadError(f"damaged or unreadable PDF: {exc}") from exc
    blocks = [(sec, txt.strip()) for sec, txt in pages if txt.strip()]
    if not blocks:
        return []
    return [Document(source, str(meta_title).strip() or _title_from_name(source), blocks)]
