"""Split documents into overlapping chunks of whole sentences, each carrying its citation metadata.

The budget is in characters (about 4 per English word piece): MiniLM reads at most 256 word pieces,
so the default of 800 characters keeps every chunk, with its title prefix, inside the model window.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from kb.loaders import Document

MAX_CHARS = 800
OVERLAP_CHARS = 200

# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace and
# an upper-case letter, digit or opening bracket; common abbreviations are protected first.
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREV = re.compile(r"\b(e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|approx|No|Fig|cf)\.", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


@dataclass
class Chunk:
    chunk_id: str
    text: str
    source: str
    title: str
    section: str
    aliases: tuple[str, ...] = ()

    def embed_text(self) -> str:
        """What the embedder and BM25 see: the title (and aliases) and section give every chunk context."""
        head = self.title + (f" ({', '.join(self.aliases)})" if self.aliases else "")
        if self.section:
            head += f" - {self.section}"
        return f"{head}: {self.text}" if head else self.text


def split_sentences(text: str) -> list[str]:
    """Sentences, with each list item and each non-empty line of a list/table kept as its own unit."""
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        # Lists and "key: value" rows are line-structured: each line is a unit. Prose is re-joined.
        if any(_LIST_ITEM.match(ln) for ln in lines) or (len(lines) > 1 and all(":" in ln for ln in lines)):
            pieces = lines
        else:
            pieces = [" ".join(lines)]
        for piece in pieces:
            guarded = _ABBREV.sub(lambda m: m.group(0).replace(".", "\x00"), piece)
            units += [s.replace("\x00", ".").strip() for s in _SENT_END.split(guarded) if s.strip()]
    return units


def _hard_split(sentence: str, max_chars: int) -> list[str]:
    """A single sentence longer than the budget is cut at word boundaries."""
    parts, current = [], ""
    for word in sentence.split():
        while len(word) > max_chars:  # a pathological token (a URL, a base64 blob)
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def pack(sentences: list[str], max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[str]:
    """Greedily pack sentences into chunks <= max_chars; each new chunk repeats the previous chunk's
    last sentences (up to overlap_chars) so an answer cut across a boundary is still found whole."""
    if overlap_chars >= max_chars:
        raise ValueError("overlap must be smaller than the chunk size")
    units = [p for s in sentences for p in (_hard_split(s, max_chars) if len(s) > max_chars else [s])]
    chunks: list[str] = []
    current: list[str] = []

    def size(items):
        return sum(len(x) for x in items) + max(len(items) - 1, 0)

    for unit in units:
        if current and size(current + [unit]) > max_chars:
            chunks.append(" ".join(current))
            carry: list[str] = []
            for prev in reversed(current):
                if size([prev] + carry + [unit]) > max_chars or size([prev] + carry) > overlap_chars:
                    break
                carry.insert(0, prev)
            current = carry
        current.append(unit)
    if current:
        chunks.append(" ".join(current))
    return chunks


def chunk_id(source: str, record: int, section: str, position: int, text: str) -> str:
    key = "\x1f".join([source, str(record), section, str(position), text])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def chunk_document(doc: Document, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunks never span two sections, so each one cites exactly one section."""
    out: list[Chunk] = []
    for section, text in doc.blocks:
        for piece in pack(split_sentences(text), max_chars, overlap_chars):
            # the position counts across the whole document, so ids stay unique even if a
            # heading repeats; identical content gives identical ids on every rebuild
            out.append(Chunk(chunk_id(doc.source, doc.record, section, len(out), piece), piece,
                             doc.source, doc.title, section, tuple(doc.aliases)))
    return out
