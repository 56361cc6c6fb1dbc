"""Knowledge-base documents: every loader gives documents or one LoadError line, never a traceback."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st
from tests.adversarial.strategies import any_text, as_bytes, clean, fast, json_values, mixed_text, raw_bytes, records, scratch, tally

from kb.loaders import Document, LoadError, load_file

TEXT_KINDS = [".md", ".txt", ".html", ".csv", ".tsv", ".json", ".jsonl"]


def _load(path, text_field=None):
    docs = clean(load_file, path, path.name, text_field, errors=(LoadError,))
    if not isinstance(docs, Exception):
        assert docs and all(isinstance(d, Document) for d in docs)
        for doc in docs:
            assert isinstance(doc.title, str)
            assert all(isinstance(sec, str) and isinstance(txt, str) for sec, txt in doc.blocks)
            assert any(txt.strip() for _, txt in doc.blocks)
    return docs


markdownish = st.lists(st.one_of(any_text, st.sampled_from(["# Title", "## Section", "===", "---", "```", "    # code",
                                                            "Also called: a, b;", "<h1>x</h1>", "* item", "> quote"])),
                       max_size=12).map("\n".join)
html_tags = st.sampled_from(["<h1>", "</h1>", "<h2>", "<p>", "</p>", "<script>", "</script>", "<title>", "<br>",
                             "<!--", "-->", "<![CDATA[", "<?xml version='1.0'?>", "<svg>", "<nav>", "<table><tr><td>",
                             "&amp;", "&#0;", "&#xD800;", "<body>", "</html>", "<head>", "<", ">"])
htmlish = st.lists(html_tags | any_text, max_size=15).map("".join)


@fast(60)
@given(raw=as_bytes(st.one_of(mixed_text, markdownish, htmlish)), ext=st.sampled_from(TEXT_KINDS))
def test_random_bytes_in_every_text_format(raw, ext):
    tally("kb")
    with scratch() as d:
        path = d / f"doc{ext}"
        path.write_bytes(raw)
        _load(path)


@fast(40)
@given(text=st.one_of(markdownish, htmlish), ext=st.sampled_from([".md", ".html", ".txt"]))
def test_markup_soup(text, ext):
    tally("kb")
    with scratch() as d:
        path = d / f"page{ext}"
        path.write_text(text, encoding="utf-8")
        _load(path)


@fast(40)
@given(data=st.one_of(json_values, st.lists(records, max_size=4), st.dictionaries(
    st.sampled_from(["documents", "data", "items", "records", "x"]), st.lists(records | json_values, max_size=3),
    max_size=2)), lines=st.booleans(), text_field=st.none() | st.sampled_from(["text", "body", "missing"]) | any_text)
def test_json_structures(data, lines, text_field):
    tally("kb")
    with scratch() as d:
        if lines:
            path = d / "docs.jsonl"
            items = data if isinstance(data, list) else [data]
            path.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items), encoding="utf-8")
        else:
            path = d / "docs.json"
            path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        _load(path, text_field or None)


@fast(40)
@given(rows=st.lists(st.lists(mixed_text, max_size=5), max_size=5), delim=st.sampled_from([",", ";", "\t", "|"]),
       ext=st.sampled_from([".csv", ".tsv"]))
def test_csv_ragged_and_odd_delimiters(rows, delim, ext):
    tally("kb")
    buf = io.StringIO()
    csv.writer(buf, delimiter=delim).writerows(rows)
    with scratch() as d:
        path = d / f"table{ext}"
        path.write_text(buf.getvalue(), encoding="utf-8")
        _load(path)


pdf_tokens = st.sampled_from([b"1 0 obj", b"endobj", b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R]"
                              b" /Count 1 >>", b"stream\n", b"endstream", b"xref\n0 4\n", b"trailer << /Root 1 0 R >>",
                              b"startxref\n", b"%%EOF", b"/Encrypt", b"/Length 99999999", b"(", b")", b"<<", b">>", b"[",
                              b"0000000000 65535 f \n", b"/Filter /FlateDecode"])


@fast(50)
@given(body=st.lists(pdf_tokens | raw_bytes, max_size=12).map(b"\n".join),
       version=st.sampled_from([b"1.4", b"1.7", b"2.0", b"9.9", b""]))
def test_random_bytes_behind_a_pdf_header(body, version):
    tally("kb")
    with scratch() as d:
        path = d / "paper.pdf"
        path.write_bytes(b"%PDF-" + version + b"\n" + body)
        _load(path)
