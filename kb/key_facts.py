"""Key facts: the few sentences of the retrieved passages closest to the question, quoted verbatim.

No model writes them: each passage is split into sentences (exact substrings of its text), the
embedder scores every sentence against the question (cosine of unit vectors), the retriever's own
judgement and the question's words are added to that (see `rank_score`), and the best 1-3 above a
floor are kept. A reader therefore always sees the reference text itself, even when the chat model
misquotes it.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from kb.chunking import _ABBREV
from kb.condition_names import with_titles
from kb.embedder import encode_query

# Cosine (all-MiniLM-L6-v2) a sentence, embedded under its title and section, needs (to the question
# or to the turn's search query, which for a follow-up holds the earlier question) to be listed at all.
# On the test KB (tests/data/kb/docs, 8 questions) the best sentence scored 0.60-0.84 and off-topic
# questions ("how do I bake bread?") peaked at 0.09. Not tuned further: the top sentence held the
# answer for 5 of the 8 questions (for "what is velmora fever treated with?" it came third); a short
# sentence with little content of its own ("It does not exist in the real world.") can outrank it,
# since its vector is then mostly its title's.
MIN_SIMILARITY = 0.35
# Log-odds (the ranker's scale): the block keeps only sentences this close to the best one, so a weak
# second fact is not padded in. Cross-validated as above, the 3-line block held a fact for 0.746 /
# 0.807 / 0.854 of questions with 0.5 / 1 / 2; 1 keeps it short.
MARGIN = 1.0
LIMIT = 3
# The prompt lists more of them (`ranked`, `format_lines`) so the model can restate what the passages
# say without finding it in ~500 tokens of passages: on the grounded train split (342 covered
# questions) an expected fact was among the best 3 / 4 / 5 / 6 sentences of the earlier hand-set
# ranking (no margin, no floor) for 0.836 / 0.868 / 0.892 / 0.927 of them; the learned ranker below
# gets 0.892 / 0.904 / 0.921 with 4 / 5 / 6 (floor included; 0.939 with 8). 6 lines cost ~180 prompt
# tokens and the doctor restates up to 6, so a fact ranked 5th or 6th still reaches the answer. 8 lines,
# with the doctor retrained on them, were tried and not kept (benchmarks/README.md): fact hit 0.900 on the
# train questions, as with 6, and one question fewer on the test split. Gradient-boosted trees over the
# same features ranked no better (0.924 / 0.942 with 6 / 8).
PROMPT_LIMIT = 6
MAX_SENTENCES = 96  # embedding cost stays bounded whatever the passages hold
# Ranking: a logistic regression over `rank_features` (the cosine to the question and to the turn's
# search query, the passage's place in the retriever's order, the question words the sentence holds,
# and a few marks of a specific statement: a number, a bracket, "such as", its length, a seek-care
# section). `medchat kb fit-ranker` (kb/sentence_ranker.py) fits it on the grounded set's train split,
# where the label is "the sentence holds an expected fact", and stores it in RANKER_FILE. In 5-fold
# cross-validation grouped by condition (342 covered questions) an expected fact was among the first 1
# / 4 listed sentences for 0.632 / 0.892 of them, against 0.544 / 0.819 for the hand-set sum it
# replaced (cosine + 0.1 in passage [1] + 0.1 x question-word share, floor on the question's cosine).
RANKER_FILE = Path(__file__).resolve().parent / "data" / "key_fact_ranker.json"
FEATURES = ("cosine", "cosine_query", "first_passage", "inverse_rank", "question_words", "has_digit",
            "has_bracket", "names_example", "log_words", "seek_care")
SEEK_SECTIONS = ("Red flags", "When to seek care")
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
    rank: float = 0.0  # `rank_score`: the ranker's log-odds that the sentence holds the answer

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


def scored(question: str, passages, embedder, query: str = "") -> list[tuple[int, object, str, float, float]]:
    """Every candidate sentence of `passages` (numbered from 1, as in the prompt), with its cosine to the
    question and to `query` (what the turn searched with; the question itself when empty):
    (n, passage, sentence, cosine, cosine_query). The one place `ranked` and the ranker's fit read."""
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
    titles = [p.title for p in passages if getattr(p, "named", False)]  # as the search read the query
    question, query = with_titles(question, titles), with_titles(query, titles) if query else query
    vectors = embedder.encode([_in_context(p, s) for _, p, s in candidates])
    cosines = (vectors @ encode_query(embedder, question)).tolist()
    by_query = cosines if not query or query == question else (vectors @ encode_query(embedder, query)).tolist()
    return [(n, p, s, c, cq) for (n, p, s), c, cq in zip(candidates, cosines, by_query)]


def ranked(question: str, passages, embedder, limit: int = PROMPT_LIMIT,
           min_score: float = MIN_SIMILARITY, query: str = "") -> list[KeyFact]:
    """The `limit` best-ranked verbatim sentences of `passages` whose cosine to the question or to the
    turn's `query` clears `min_score`, best first, with no margin: the lines the prompt lists
    (`format_lines`); `shown` narrows them to the block a reader sees."""
    if not question.strip() or not passages or limit <= 0:
        return []
    candidates = scored(question, passages, embedder, query)
    asked, ranker = content_words(question), load_ranker()
    ranks = [rank_score(rank_features(c, cq, n, asked, s, getattr(p, "section", "")), ranker)
             for n, p, s, c, cq in candidates]
    out = []
    for i in sorted(range(len(candidates)), key=lambda i: (-ranks[i], i)):
        if len(out) == limit:
            break
        n, p, sentence, cosine, cosine_query = candidates[i]
        if max(cosine, cosine_query) < min_score:  # the floor is the embedder's own judgement: off-topic stays out
            continue
        out.append(KeyFact(n, sentence, p.source, p.title, getattr(p, "section", ""), float(cosine), float(ranks[i])))
    return out


def shown(facts: list[KeyFact], limit: int = LIMIT, margin: float = MARGIN) -> list[KeyFact]:
    """The first `limit` of `ranked`'s list that rank within `margin` of its best one."""
    return [f for f in facts if f.rank >= facts[0].rank - margin][:limit] if facts else []


def rank_features(cosine: float, cosine_query: float, n: int, asked: set[str], sentence: str,
                  section: str) -> list[float]:
    """One candidate's FEATURES, in order."""
    share = len(asked & content_words(sentence)) / len(asked) if asked else 0.0
    low = sentence.lower()
    return [cosine, cosine_query, float(n == 1), 1.0 / n, share, float(any(ch.isdigit() for ch in sentence)),
            float("(" in sentence), float("such as" in low or "for example" in low),
            math.log(max(1, len(sentence.split()))), float(section in SEEK_SECTIONS)]


def rank_score(features: list[float], ranker: dict | None = None) -> float:
    """How a candidate ranks: the ranker's log-odds that it holds what the question asks."""
    ranker = ranker or load_ranker()
    return float(sum(w * f for w, f in zip(ranker["weights"], features)) + ranker["bias"])


def load_ranker(path: Path | None = None) -> dict:
    """The fitted ranker ({"features", "weights", "bias", ...}), read once per file."""
    return _load_ranker(str(path or RANKER_FILE))


@functools.lru_cache(maxsize=4)
def _load_ranker(path: str) -> dict:
    from medchat.core.errors import UserError

    fix = "refit it with `medchat kb fit-ranker`"
    try:
        ranker = json.loads(Path(path).read_text(encoding="utf-8"))
        ok = tuple(ranker["features"]) == FEATURES and len(ranker["weights"]) == len(FEATURES)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read the key-fact ranker {path} ({exc}); {fix}") from exc
    if not ok:
        raise UserError(f"the key-fact ranker {path} was fitted on other features; {fix}")
    return ranker


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


def lead_line(facts: list[KeyFact]) -> str:
    """The sentence a reply the KB covers starts with: the best-ranked one, verbatim, cited as the
    doctor cites ("... [2]."); the model writes the rest. "" when nothing passed the floor."""
    if not facts:
        return ""
    return f"{facts[0].sentence.strip().rstrip('.;:, ')} [{facts[0].n}]."
