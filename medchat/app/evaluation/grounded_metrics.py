"""Scoring grounded answers: fact hits, citations, abstention and unsupported specifics (no model).

Per answer (`score_answer`), given the question (kb.grounded.GroundedQuestion) and the passages the
chat showed the model for it (each with `.text`):

- hit: a covered answer contains ANY expected fact term (case-insensitive substring).
- cited: the [n] markers in the answer ("[2]", "[1, 3]", "[1][2]"); `cites` = at least one marker.
- citation_ok: SOME cited n is a shown passage (1 <= n <= passages) whose text contains an expected
  fact term (case-insensitive). An out-of-range [n] cites nothing real and never counts as right.
- abstained: the answer says the passages / knowledge base do not cover it or that it does not know
  (NOT_COVERED) AND suggests a clinician (CLINICIAN). Both regex lists are English only.
- unsupported: specifics the answer names that none of its passages contain. A proxy with two parts:
  numbers followed by a unit (NUMBER_UNIT, ranges included; supported when each of its numbers
  appears anywhere in the passages, whatever the unit: "6-12 weeks" in a passage backs "12 weeks" in
  the answer, not the other way round), and names from SPECIFIC_TERMS,
  a hand-picked list of drug and test names that occur in the bundled KB text (supported when the
  name occurs in a passage). Other names (a drug the KB never mentions) are not caught.

Aggregate (`aggregate`), over one profile's rows:

- fact_hit_rate = covered answers with a hit / covered questions
- citation_accuracy = covered answers with citation_ok / covered answers that cite (None if none cite)
- no_citation_rate = covered answers citing nothing / covered questions
- abstention_rate = uncovered answers that abstained / uncovered questions
- false_abstention_rate = covered answers that abstained / covered questions
- unsupported_rate = answers (all) naming at least one unsupported specific / answers
- words_mean = mean answer length in whitespace-separated words
- retrieval_fact_rate = covered questions whose shown passages contain an expected fact / covered
  questions (the retrieval ceiling for fact_hit_rate with correct citations)
- model_fact_hit_rate = covered answers with an expected fact in what the model wrote, the KB lead
  sentence (chat.kb_lead: the session starts a covered reply with the best-ranked sentence, verbatim)
  left out: how much of fact_hit_rate is the model's own
- key_fact_hit_rate = covered questions whose "From the knowledge base" block (the 1-3 passage
  sentences quoted verbatim after the answer, chosen by the embedder) contains an expected fact /
  covered questions: what a reader sees from the KB itself, whatever the model wrote
"""

from __future__ import annotations

import re

from kb.grounded import contains_fact  # one rule for the eval and the ranker's labels

NOT_COVERED = [
    r"\b(?:passages?|sources?|references?|knowledge base|information (?:i have|provided|available)|context)\b"
    r"[^.?!]{0,80}\b(?:do(?:es)?n[o']?t|do(?:es)? not|don't|doesn't|never)\b[^.?!]{0,40}"
    r"\b(?:cover|mention|include|contain|address|discuss|say|describe)",
    r"\b(?:no|not any|nothing in the)\b[^.?!]{0,30}\b(?:passages?|sources?|information|references?|knowledge base)\b"
    r"[^.?!]{0,40}\b(?:about|on|cover|mention|address)",
    r"\b(?:not|isn't|is not)\s+(?:covered|mentioned|addressed|included)\s+(?:in|by)\b",
    r"\bi (?:do not|don't|cannot|can't|am not able to|am unable to)\s+(?:know|say|answer|find|tell|be sure)\b",
    r"\bi'?m (?:not sure|unable to|not able to)\b",
    r"\b(?:outside|beyond) (?:the scope|what i|my)\b",
]
CLINICIAN = [
    r"\b(?:doctor|gp|clinician|physician|pharmacist|nurse|specialist|neurologist|vet|veterinarian|dentist|"
    r"midwife|health ?care (?:provider|professional|team)|medical (?:professional|advice|help|attention)|"
    r"emergency services|urgent care|a&e|emergency department)s?\b",
]
UNITS = (r"mg|mcg|µg|micrograms?|milligrams?|grams?|g|kg|ml|millilit(?:re|er)s?|l|lit(?:re|er)s?|mmol/l|mmol|"
         r"mmhg|iu|units?|%|percent|per ?cent|cm|mm|metres?|meters?|°c|degrees?|bpm|"
         r"seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|times?|doses?|tablets?|puffs?")
NUMBER_UNIT = re.compile(rf"(?<![\w.])(\d+(?:[.,]\d+)?)\s*(?:-|to|–)?\s*(?:\d+(?:[.,]\d+)?)?\s*(?:{UNITS})(?![a-z])",
                         re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")
# Drug and test names, each present in at least one file of kb/data/default (checked with grep -w).
SPECIFIC_TERMS = (
    "paracetamol", "ibuprofen", "aspirin", "naproxen", "morphine", "amoxicillin", "doxycycline", "nitrofurantoin",
    "trimethoprim", "oseltamivir", "aciclovir", "fluconazole", "clotrimazole", "permethrin", "metformin",
    "insulin", "glucagon", "statin", "salbutamol", "prednisolone", "omeprazole", "antihistamine",
    "benzoyl peroxide", "adapalene", "isotretinoin", "levothyroxine", "warfarin", "heparin", "clopidogrel",
    "ace inhibitor", "methotrexate", "allopurinol", "colchicine", "sertraline", "fluoxetine", "lithium",
    "methylphenidate", "donepezil", "levodopa", "naloxone", "adrenaline", "epinephrine", "loperamide",
    "ultrasound", "ct angiography", "ct scan", "mri", "x-ray", "ecg", "echocardiogram", "hba1c", "biopsy",
    "colonoscopy", "endoscopy", "spirometry", "lumbar puncture", "eeg", "psa", "ferritin",
)
_TERM_RES = {t: re.compile(rf"(?<![\w-]){re.escape(t)}(?![\w-])", re.IGNORECASE) for t in SPECIFIC_TERMS}
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NOT_COVERED = [re.compile(p, re.IGNORECASE) for p in NOT_COVERED]
_CLINICIAN = [re.compile(p, re.IGNORECASE) for p in CLINICIAN]


def citations(answer: str) -> list[int]:
    """Cited passage numbers in order of first appearance."""
    out: list[int] = []
    for m in _CITE.finditer(answer or ""):
        for n in re.split(r"\s*[,;]\s*", m.group(1)):
            if int(n) not in out:
                out.append(int(n))
    return out


def abstains(answer: str) -> bool:
    return any(r.search(answer or "") for r in _NOT_COVERED) and any(r.search(answer or "") for r in _CLINICIAN)


def _num(text: str) -> float:
    return float(text.replace(",", "."))


def unsupported_specifics(answer: str, passage_texts: list[str]) -> list[str]:
    """Numbers-with-units and SPECIFIC_TERMS in the answer that no passage backs (see module doc)."""
    joined = "\n".join(passage_texts)
    numbers = {_num(n) for n in NUMBER.findall(joined)}
    out = []
    for m in NUMBER_UNIT.finditer(answer or ""):
        if any(_num(n) not in numbers for n in NUMBER.findall(m.group(0))) and m.group(0).strip() not in out:
            out.append(m.group(0).strip())
    for term, rx in _TERM_RES.items():
        if rx.search(answer or "") and not rx.search(joined):
            out.append(term)
    return out


def score_answer(q, answer: str, passage_texts: list[str], key_fact_texts: list[str] = (), lead: str = "") -> dict:
    """The per-answer fields of a predictions.jsonl row (see module doc); `lead`: the reply's given start."""
    cited = citations(answer)
    row = {"cited": cited, "cites": bool(cited), "abstained": abstains(answer),
           "words": len((answer or "").split()), "unsupported": unsupported_specifics(answer, passage_texts)}
    if q.covered:
        row["hit"] = contains_fact(answer, q.facts)
        own = answer.replace(lead, " ", 1) if lead else answer
        row["model_hit"] = contains_fact(own, q.facts)
        row["citation_ok"] = any(1 <= n <= len(passage_texts) and contains_fact(passage_texts[n - 1], q.facts)
                                 for n in cited)
        row["fact_in_passages"] = any(contains_fact(t, q.facts) for t in passage_texts)
        row["key_fact_hit"] = any(contains_fact(t, q.facts) for t in key_fact_texts)
    return row


def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def aggregate(rows: list[dict]) -> dict:
    """One profile's metrics from its rows (each row: score_answer's fields plus "covered")."""
    cov = [r for r in rows if r["covered"]]
    unc = [r for r in rows if not r["covered"]]
    citing = [r for r in cov if r["cites"]]
    return {
        "fact_hit_rate": _share(sum(r["hit"] for r in cov), len(cov)),
        "citation_accuracy": _share(sum(r["citation_ok"] for r in citing), len(citing)),
        "no_citation_rate": _share(sum(not r["cites"] for r in cov), len(cov)),
        "abstention_rate": _share(sum(r["abstained"] for r in unc), len(unc)),
        "false_abstention_rate": _share(sum(r["abstained"] for r in cov), len(cov)),
        "model_fact_hit_rate": _share(sum(r.get("model_hit", r["hit"]) for r in cov), len(cov)),
        "unsupported_rate": _share(sum(bool(r["unsupported"]) for r in rows), len(rows)),
        "words_mean": _share(sum(r["words"] for r in rows), len(rows)),
        "retrieval_fact_rate": _share(sum(r["fact_in_passages"] for r in cov), len(cov)),
        "key_fact_hit_rate": _share(sum(r.get("key_fact_hit", False) for r in cov), len(cov)),
        "covered": len(cov), "uncovered": len(unc), "citing": len(citing),
    }
