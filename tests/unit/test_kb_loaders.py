"""Each document loader, file discovery, and what counts as unreadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.loaders import LoadError, discover, load_file, parse_markdown

DATA = Path(__file__).parents[1] / "data" / "kb"


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    """A minimal valid PDF with one Helvetica text line per input line (no PDF library writes text)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [4 + 2 * i for i in range(len(pages))]
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>".encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for pid, text in zip(page_ids, pages):
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 3 0 R >> >> /Contents {pid + 1} 0 R >>".encode())
        ops = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({esc(line)}) Tj T*" for line in text.split("\n")) + " ET"
        stream = ops.encode("latin-1")
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info_ref = ""
    if title:
        objs.append(f"<< /Title ({esc(title)}) >>".encode())
        info_ref = f" /Info {len(objs)} 0 R"
    out, offsets = b"%PDF-1.4\n", []
    for n, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info_ref} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


# ---------------------------------------------------------------- Markdown

def test_markdown_title_aliases_and_sections():
    [doc] = load_file(DATA / "docs" / "velmora-fever.md", "velmora-fever.md")
    assert doc.title == "Velmora Fever"
    assert doc.aliases == ["Tarsk marsh fever", "quellin fever"]
    sections = [s for s, _ in doc.blocks]
    assert sections == ["Overview", "Symptoms", "Red flags", "Diagnosis", "Treatment", "When to seek care"]
    treatment = dict(doc.blocks)["Treatment"]
    assert "kelvaran bark tea" in treatment and "##" not in treatment
    assert all("Also called" not in text for _, text in doc.blocks)


def test_markdown_ignores_headings_in_code_and_keeps_intro_text():
    text = "# Gout\nIntro line before sections.\n\n## Causes\nUric acid.\n```\n## not a heading\n```\n## Care\nIce.\n"
    doc = parse_markdown(text, "gout.md")
    assert [s for s, _ in doc.blocks] == ["", "Causes", "Care"]
    assert doc.blocks[0][1] == "Intro line before sections."
    assert "## not a heading" in dict(doc.blocks)["Causes"]


def test_markdown_without_h1_takes_title_from_file_name():
    doc = parse_markdown("Just some text.\n\n## Part\nMore.", "notes/back-pain_tips.md")
    assert doc.title == "Back pain tips"
    assert [s for s, _ in doc.blocks] == ["", "Part"]


# ---------------------------------------------------------------- plain text

def test_text_file_is_one_untitled_section():
    [doc] = load_file(DATA / "docs" / "notes" / "hydration.txt", "notes/hydration.txt")
    assert doc.title == "Hydration" and doc.source == "notes/hydration.txt"
    assert [s for s, _ in doc.blocks] == [""]
    assert "oral rehydration solution" in doc.blocks[0][1]


def test_text_in_legacy_encoding_is_read(tmp_path):
    f = tmp_path / "old.txt"
    f.write_bytes("Caf\xe9 au lait spots are flat brown patches.".encode("cp1252"))
    [doc] = load_file(f, "old.txt")
    assert "Café au lait" in doc.blocks[0][1]


@pytest.mark.parametrize("name,content", [("blob.txt", b"\x00\x01\x02binary\x00data"),
                                          ("empty.md", b"   \n\n"),
                                          ("broken.pdf", b"%PDF-1.4 this is not really a pdf"),
                                          ("bad.json", b"{not json"),
                                          ("bad.jsonl", b'{"text": "ok"}\n{oops\n')])
def test_unreadable_files_raise_load_error(tmp_path, name, content):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(LoadError):
        load_file(f, name)


# ---------------------------------------------------------------- HTML

def test_html_strips_markup_scripts_and_chrome():
    [doc] = load_file(DATA / "formats" / "page.html", "page.html")
    assert doc.title == "Sunburn"
    blocks = dict(doc.blocks)
    assert set(blocks) == {"", "Symptoms", "Treatment"}
    everything = " ".join(t for _, t in doc.blocks)
    assert "ultraviolet light" in everything  # inline <b> text joined with its sentence
    assert "Red, hot and painful skin" in blocks["Symptoms"]
    for junk in ("tracking script", "color: red", "comment that must not", "Home | About", "<p>"):
        assert junk not in everything


def test_html_without_h1_uses_title_element(tmp_path):
    f = tmp_path / "x.html"
    f.write_text("<html><head><title>Ear wax</title></head><body><p>Ear wax protects the ear.</p></body></html>")
    [doc] = load_file(f, "x.html")
    assert doc.title == "Ear wax" and "protects the ear" in doc.blocks[0][1]


# ---------------------------------------------------------------- JSON / JSONL

def test_jsonl_default_text_fields_and_titles():
    docs = load_file(DATA / "formats" / "records.jsonl", "records.jsonl")
    assert [d.title for d in docs] == ["Conjunctivitis", "Nosebleeds"]  # the record without text is skipped
    assert docs[0].blocks == [("Overview", docs[0].blocks[0][1])] and "white of the eye" in docs[0].blocks[0][1]
    assert "pinch the soft part" in docs[1].blocks[0][1]  # found under "content"
    assert [d.record for d in docs] == [0, 1]


def test_json_document_list_and_chosen_text_field():
    path = DATA / "formats" / "records.json"
    default = load_file(path, "records.json")
    assert [d.title for d in default] == ["Hiccups", "Cramp"]
    assert "Stretching" in default[1].blocks[0][1]  # "body" is a default text field
    chosen = load_file(path, "records.json", text_field="summary")
    assert [d.title for d in chosen] == ["Cramp"] and "calf" in chosen[0].blocks[0][1]


def test_json_without_the_text_field_is_unreadable(tmp_path):
    f = tmp_path / "q.json"
    f.write_text(json.dumps([{"question": "a?", "answer": "b"}]))
    with pytest.raises(LoadError, match="--text-field"):
        load_file(f, "q.json")
    assert load_file(f, "q.json", text_field="answer")[0].blocks[0][1] == "b"
    with pytest.raises(LoadError) as err:  # a field name with a line break stays on the one error line
        load_file(f, "q.json", text_field="ans\r\nwer")
    assert "\n" not in str(err.value) and "\r" not in str(err.value) and '"ans\\r\\nwer"' in str(err.value)


# ---------------------------------------------------------------- CSV

def test_csv_rows_become_column_value_documents():
    docs = load_file(DATA / "formats" / "diseases.csv", "diseases.csv")
    assert [d.title for d in docs] == ["Measles", "Chickenpox", "Tetanus"]
    assert docs[2].blocks[0][1].splitlines() == ["disease: Tetanus", "main symptom: muscle stiffness starting in the jaw",
                                                 "spread by: spores entering a wound"]
    assert len({d.record for d in docs}) == 3


def test_tsv_and_semicolon_csv(tmp_path):
    (tmp_path / "a.tsv").write_text("name\tadvice\nSprain\tRest, ice, compression\n")
    (tmp_path / "b.csv").write_text("name;advice\nBurn;Cool under running water\n")
    [a] = load_file(tmp_path / "a.tsv", "a.tsv")
    [b] = load_file(tmp_path / "b.csv", "b.csv")
    assert a.title == "Sprain" and "advice: Rest, ice, compression" in a.blocks[0][1]
    assert b.title == "Burn" and "advice: Cool under running water" in b.blocks[0][1]


# ---------------------------------------------------------------- PDF

def test_pdf_pages_become_sections(tmp_path):
    pdf = make_pdf(tmp_path / "leaflet.pdf", ["Shingles causes a painful band of rash.", "Antivirals work best early."],
                   title="Shingles leaflet")
    [doc] = load_file(pdf, "leaflet.pdf")
    assert doc.title == "Shingles leaflet"
    assert [s for s, _ in doc.blocks] == ["page 1", "page 2"]
    assert "painful band of rash" in doc.blocks[0][1] and "Antivirals" in doc.blocks[1][1]


def test_pdf_without_text_is_unreadable(tmp_path):
    pdf = make_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(LoadError, match="no text"):
        load_file(pdf, "scan.pdf")


# ---------------------------------------------------------------- discovery

def test_discover_walks_folders_with_relative_sources(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.md").write_text("# A\ntext")
    (tmp_path / "sub" / "b.txt").write_text("text")
    (tmp_path / ".hidden" / "c.md").write_text("# C")
    (tmp_path / ".dot.md").write_text("# D")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    files, problems = discover([tmp_path, tmp_path / "missing.md"])
    assert [f.source for f in files] == ["a.md", "sub/b.txt"]
    assert ("image.png", "unsupported file type '.png'") in problems
    assert any(src.endswith("missing.md") and "no such" in why for src, why in problems)


def test_discover_single_file_uses_its_name_and_flags_clashes(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "same.md").write_text("# One")
    (tmp_path / "y" / "same.md").write_text("# Two")
    files, problems = discover([tmp_path / "x" / "same.md", tmp_path / "y" / "same.md", tmp_path / "x" / "same.md"])
    assert [f.source for f in files] == ["same.md"]
    assert len(problems) == 1 and "already named" in problems[0][1]
