"""Sentence chunking: budget, overlap, coverage, metadata and stable ids."""

from __future__ import annotations

import pytest

from kb.chunking import chunk_document, pack, split_sentences
from kb.loaders import Document, parse_markdown


def sentences(n: int, width: int = 60) -> list[str]:
    return [f"Sentence {i:02d} " + "x" * (width - 14) + "." for i in range(n)]


def test_split_sentences_respects_abbreviations_and_lists():
    text = ("Dr. Lee saw the patient, e.g. twice a week. Was it flu? Yes! Rest helped.\n"
            "- drink water\n- sleep well\n\n"
            "Dose: 1 tablet\nTimes: twice a day")
    assert split_sentences(text) == [
        "Dr. Lee saw the patient, e.g. twice a week.", "Was it flu?", "Yes!", "Rest helped.",
        "- drink water", "- sleep well", "Dose: 1 tablet", "Times: twice a day"]


def test_prose_lines_are_rejoined():
    assert split_sentences("A sentence that wraps\nover two lines. Next one.") == [
        "A sentence that wraps over two lines.", "Next one."]


@pytest.mark.parametrize("max_chars,overlap", [(200, 0), (200, 70), (300, 130), (500, 200)])
def test_chunks_fit_the_budget_cover_everything_and_overlap(max_chars, overlap):
    sents = sentences(20)
    chunks = pack(sents, max_chars, overlap)
    assert all(len(c) <= max_chars for c in chunks)
    # every sentence appears, in order, and the concatenation without repeats is the original
    seen = []
    for c in chunks:
        for s in sents:
            if s in c and (not seen or sents.index(s) > sents.index(seen[-1])):
                seen.append(s)
    assert seen == sents
    for a, b in zip(chunks, chunks[1:]):
        shared = [s for s in sents if s in a and s in b]
        if overlap >= 61:  # at least one 60-char sentence fits in the overlap
            assert shared, "consecutive chunks must share the boundary sentence"
            assert sum(len(s) for s in shared) + len(shared) - 1 <= overlap
            assert a.endswith(shared[-1]) and b.startswith(shared[0])
        else:
            assert not shared


def test_long_sentence_is_split_at_words():
    long = " ".join(["word"] * 100)  # 499 chars
    chunks = pack([long, "Short one."], max_chars=120, overlap_chars=0)
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(chunks).split().count("word") == 100
    assert chunks[-1].endswith("Short one.")


def test_overlap_must_be_smaller_than_budget():
    with pytest.raises(ValueError):
        pack(["a."], max_chars=100, overlap_chars=100)


def test_chunk_metadata_and_sections_never_mixed():
    body = " ".join(f"Symptom fact number {i} is described here in words." for i in range(30))
    doc = parse_markdown(f"# Mumps\nAlso called: parotitis\n\n## Symptoms\n{body}\n\n## Treatment\nRest.", "viral/mumps.md")
    chunks = chunk_document(doc, max_chars=300, overlap_chars=80)
    assert len(chunks) >= 3
    assert {c.source for c in chunks} == {"viral/mumps.md"} and {c.title for c in chunks} == {"Mumps"}
    assert [c.section for c in chunks][-1] == "Treatment" and chunks[-1].text == "Rest."
    assert all("Rest." not in c.text for c in chunks if c.section == "Symptoms")
    assert chunks[0].aliases == ("parotitis",)
    assert chunks[0].embed_text().startswith("Mumps (parotitis) - Symptoms: ")


def test_chunk_ids_are_unique_and_stable():
    doc = Document("a.md", "A", [("Notes", "Same text."), ("Notes", "Same text."), ("Other", "Same text.")])
    first = [c.chunk_id for c in chunk_document(doc)]
    again = [c.chunk_id for c in chunk_document(Document("a.md", "A", list(doc.blocks)))]
    assert first == again and len(set(first)) == 3
    moved = [c.chunk_id for c in chunk_document(Document("b.md", "A", list(doc.blocks)))]
    assert not set(moved) & set(first)
