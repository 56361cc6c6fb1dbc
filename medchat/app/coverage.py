"""The "not in the knowledge base" notice: a fixed line put before the model's answer when no
retrieved passage closely matches the question, so a reader knows the answer is not checked against
the KB. Decided by the retriever's similarity, with no model generation involved (the small chat
model does not notice by itself that the passages are about something else: it abstained on 0 of 11
uncovered test questions).
"""

from __future__ import annotations

# The best passage's cosine similarity (all-MiniLM-L6-v2) below which a question counts as not
# covered. Chosen on the grounded set's train split (342 covered, 41 uncovered questions): below
# 0.45 fall 73% of the uncovered questions and 6.4% of the covered ones (0.40: 51% / 2.9%).
COVERED_MIN_SIMILARITY = 0.45

NOTICE = {
    "en": "Nothing in the knowledge base covers this question closely, so the answer below is not checked "
          "against it; for advice about it, please ask a doctor or pharmacist.\n\n",
    "zh": "知识库中没有与这个问题密切相关的内容，下面的回答未经知识库核对；具体情况请咨询医生或药师。\n\n",
}


def covered(sources: list) -> bool:
    return any(getattr(p, "similarity", 0.0) >= COVERED_MIN_SIMILARITY for p in sources)


def notice(question: str, sources: list) -> str:
    """The notice in the question's language, or "" when a passage covers it."""
    if covered(sources):
        return ""
    from medchat.app.triage.text import detect_language

    return NOTICE.get(detect_language(question), NOTICE["en"])
