"""Key facts: the few sentences of the retrieved passages closest to the question, quoted verbatim.

No model writes them: each passage is split into sentences (exact substrings of its text), the
embedder scores every sentence against the question (cosine of unit vectors), the retriever's own
judgement and the question's words are added to that (see `rank_score`), and the best 1-3 above a
floor are kept. A reader therefore always sees the reference text itself, even when the chat model
misquotes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.chunking import _ABBREV
from kb.embedder import encode_query

# Cosine (all-MiniLM-L6-v2) a sentence, embedded under its title and section, needs to be shown.
# On the test KB (tests/data/kb/docs, 8 questions) the best sentence scored 0.60-0.84 and off-topic
# questions ("how do I bake bread?") peaked at 0.09. Not tuned further: the top sentence held the
# answer for 5 of the 8 questions (for "what is velmora fever treated with?" it came third); a short
# sentence with little content of its own ("It does not exist in the real world.") can outrank it,
# since its vector is then mostly its title's.
MIN_SIMILARITY = 0.35
MARGIN = 0.15  # keep only sentences within this of the best one, so a weak second fact is not padded in
LIMIT = 3
# The prompt lists more of them (`ranked`, `format_lines`) so the model can restate what the passages
# say without finding it in ~500 tokens of passages: on the grounded train split (342 covered
# questions) an expected fact was among the best 3 / 4 / 5 / 6 ranked sentences (no margin) for
# 0.836 / 0.868 / 0.892 / 0.927 of them. 4 keeps the prompt short (~120 tokens more).
PROMPT_LIMIT = 4
MAX_SENTENCES = 96  # embedding cost stays bounded whatever the passages hold
# Ranking = cosine + FIRST_PASSAGE if the sentence is in passage [1] + OVERLAP x the share of the
# question's content words it contains. Cosine alone let a sentence of a lower passage that merely
# names the condition outrank the answer in the passage the retriever (BM25 + vectors + section
# intent) put first. On the grounded set's train split (340 covered questions, kb/data/grounded) the
# fact was among the shown sentences for 0.691 by cosine alone, 0.762 with FIRST_PASSAGE = 0.1 and
# 0.779 with both (0.2 and 0.4 for OVERLAP did worse: short sentences echoing the question win).
FIRST_PASSAGE = 0.1
OVERLAP = 0.1
LINES_HEADER = "Most relevant sentences of the passages:"
_STOP = frozenset("a an the of to for and or in on is are it its my i do you how what can with be at this that does "
                  "should when u".split())

# Inside a block of prose: . ! ? (with any closing quote/bracket, kept in the sentence) before
# whitespace and a capital/digit/opening bracket, or after 。！？ (no space needed); the match is the
# gap between two sentences.
_BOUNDARY = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])"
                       r"|(?:(?<=[。！？])|(?<=[。！？][」』”）)]))\s*")
# A markdown list marker at the start of a line or, since chunking joins list lines with spaces,
# after whitespace ("- a - b"); numbered markers only at a line start ("age over 65. Then" is prose).
_ITEM = re.compile(r"[ \t]*(?:[-*+•]|\d+[.)])[ \t]+(?=\S)")
_BULLET = re.compile(r"(?:^|(?<=\s))[-*+•]\s+(?=\S)")
_LETTER = re.compile(r"\w")


@dataclass
class KeyFact:
    n: int  # the passage's number in the prompt and the citation footer ([n])
    sentence: str  # an exact substring of that passage's text
    source: str
    title: str
    section: str
    score: float  # cosine of question and sentence
    rank: float = 0.0  # `rank_score`: the cosine plus the passage-[1] and question-word terms

    def to_dict(self) -> dict:
        return {"n": self.n, "sentence": self.sentence, "source": self.source, "title": self.title,
                "section": self.section, "score": round(self.score, 4)}

    @property
    def head(self) -> str:
        return f"{self.title} — {self.section}" if self.section else self.title

    def cite(self) -> str:
        return f"{self.head}, {self.source}"


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each an exact substring of it (unlike `chunking.split_sentences`,
    which re-joins wrapped lines): prose lines are joined into blocks, each list item is a block of
    its own, headings and blank lines end blocks, then blocks are cut at sentence ends."""
    out: list[str] = []
    for start, end in _blocks(text):
        block = text[start:end]
        guarded = _ABBREV.sub(lambda m: m.group(0).replace(".", "\x00"), block)  # same length
        pos = 0
        for m in [*_BOUNDARY.finditer(guarded), None]:
            piece = block[pos:len(block) if m is None else m.start()].strip()
            if piece and _LETTER.search(piece):
                out.append(piece)
            if m is not None:
                pos = m.end()
    return out


def _blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the prose blocks and list items of `text`."""
    spans: list[tuple[int, int]] = []
    prose: list[int] | None = None  # [start, end] of the prose block being grown
    offset = 0
    for line in text.splitlines(keepends=True):
        start, end = offset, offset + len(line.rstrip("\r\n"))
        offset += len(line)
        stripped = text[start:end].strip()
        item = _ITEM.match(text, start, end)
        if not stripped or stripped.startswith("#") or item:
            if prose:
                spans.append((prose[0], prose[1]))
            prose = None
            if item:
                spans.append((item.end(), end))
        elif prose is None:
            prose = [start, end]
        else:
            prose[1] = end
    if prose:
        spans.append((prose[0], prose[1]))
    out = []  # inline bullets ("- a - b": chunking joins list lines with spaces) cut a span further
    for start, end in spans:
        for m in _BULLET.finditer(text, start, end):
            out.append((start, m.start()))
            start = m.end()
        out.append((start, end))
    return out


def ranked(question: str, passages, embedder, limit: int = PROMPT_LIMIT,
           min_score: float = MIN_SIMILARITY) -> list[KeyFact]:
    """The `limit` best-ranked verbatim sentences of `passages` (numbered from 1, as in the prompt) whose
    cosine clears `min_score`, best first, with no margin: the lines the prompt lists (`format_lines`);
    `shown` narrows them to the block a reader sees."""
    if not question.strip() or not passages or limit <= 0:
        return []
    seen, candidates = set(), []
    for n, p in enumerate(passages, 1):
        for sentence in split_sentences(p.text):
            key = " ".join(sentence.lower().split())
            if key in seen:  # overlapping chunks repeat their boundary sentences: keep the first
                continue
            seen.add(key)
            candidates.append((n, p, sentence))
    candidates = candidates[:MAX_SENTENCES]
    if not candidates:
        return []
    vectors = embedder.encode([_in_context(p, s) for _, p, s in candidates])
    cosines = (vectors @ encode_query(embedder, question)).tolist()
    asked = content_words(question)
    ranks = [rank_score(c, n, asked, s) for c, (n, _, s) in zip(cosines, candidates)]
    out = []
    for i in sorted(range(len(candidates)), key=lambda i: (-ranks[i], i)):
        if len(out) == limit:
            break
        if cosines[i] < min_score:  # the floor is on the embedder's own judgement: off-topic stays out
            continue
        n, p, sentence = candidates[i]
        out.append(KeyFact(n, sentence, p.source, p.title, getattr(p, "section", ""), float(cosines[i]),
                           float(ranks[i])))
    return out


def shown(facts: list[KeyFact], limit: int = LIMIT, margin: float = MARGIN) -> list[KeyFact]:
    """The first `limit` of `ranked`'s list that rank within `margin` of its best one."""
    return [f for f in facts if f.rank >= facts[0].rank - margin][:limit] if facts else []


def rank_score(cosine: float, n: int, asked: set[str], sentence: str) -> float:
    """How a candidate sentence ranks: its cosine, a bonus in passage [1], and the question words it holds."""
    share = len(asked & content_words(sentence)) / len(asked) if asked else 0.0
    return cosine + FIRST_PASSAGE * (n == 1) + OVERLAP * share


def content_words(text: str) -> set[str]:
    """Lower-cased words of 3+ letters or digits that carry content (the question words a sentence can echo)."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOP}


def _in_context(p, sentence: str) -> str:
    """What the embedder sees: the sentence under its title and section, as chunks are embedded
    (kb.chunking.Chunk.embed_text). Alone, "The fictional cure is kelvaran bark tea." loses to any
    sentence that names the disease; with "Velmora Fever - Treatment:" it wins a treatment question."""
    head = f"{p.title} - {p.section}" if getattr(p, "section", "") else p.title
    return f"{head}: {sentence}" if head else sentence


def format_lines(facts: list[KeyFact]) -> str:
    """The ranked sentences as the prompt lists them, after the passages: "[n] (Title — Section) sentence"."""
    if not facts:
        return ""
    lines = [LINES_HEADER]
    lines += [f"[{f.n}] ({f.head}) {f.sentence}" for f in facts]
    return "\n".join(lines)


def format_block(facts: list[KeyFact]) -> str:
    """The plain-text block the REPL and `medchat ask` print after the citation footer."""
    if not facts:
        return ""
    lines = ["From the knowledge base:"]
    lines += [f"  [{f.n}] “{f.sentence}” ({f.cite()})" for f in facts]
    return "\n".join(lines)
