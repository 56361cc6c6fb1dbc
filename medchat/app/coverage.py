"""The "not in the knowledge base" notice: a fixed line put before the model's answer when no
retrieved passage closely matches the question, or when the question names a rare term the KB never
mentions, so a reader knows the answer is not checked against the KB. No model generation involved
(the small chat model does not notice by itself that the passages are about something else: the
doctor profile abstained on its own on 0 of 11 uncovered test questions).

Chosen on the grounded set's train split (342 covered, 41 uncovered questions): similarity alone
flags 78% of the uncovered and 7.0% of the covered questions; with the rare-term check (words of 7+
letters) 95% and 8.5%. On the test split (147 / 11, never used for choosing): 55% / 5.4% -> 73% / 6.8%.
Counting a passage of the condition the query names as covering it (`Passage.named`): train 95% / 5.8%
(20 covered questions flagged instead of 29); the test split unchanged.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

# The best passage's cosine similarity (all-MiniLM-L6-v2) below which a question counts as not
# covered. Chosen on the train split: below 0.45 fall 73% of the uncovered questions and 6.4% of the
# covered ones (0.40: 51% / 2.9%).
COVERED_MIN_SIMILARITY = 0.45
RARE_MIN_LETTERS = 7  # train split: 5, 6 and 7 letters all flag 95% of uncovered; 7 the fewest covered (8.5%)

NOTICE = {
    "en": "Nothing in the knowledge base covers this question closely, so the answer below is not checked "
          "against it; for advice about it, please ask a doctor or pharmacist.\n\n",
    "zh": "知识库中没有与这个问题密切相关的内容，下面的回答未经知识库核对；具体情况请咨询医生或药师。\n\n",
}


def covered(sources: list, question: str = "", vocabulary: frozenset = frozenset()) -> bool:
    """A passage is similar enough or about the condition the question names (`Passage.named`), and the
    question names no rare term the KB never mentions."""
    if not any(getattr(p, "similarity", 0.0) >= COVERED_MIN_SIMILARITY or getattr(p, "named", False)
               for p in sources):
        return False
    return not (question and vocabulary and unknown_terms(question, vocabulary))


@lru_cache(maxsize=1)
def _common_words() -> frozenset:
    """Whole words of the default embedder's English WordPiece vocabulary: everyday and common medical
    words ("symptoms", "diabetes"); rarer names ("sarcoidosis", "keratoconus") are not among them."""
    from kb.embedder import default_model_dir

    folder = default_model_dir()
    if folder is None or not (folder / "vocab.txt").is_file():
        return frozenset()
    return frozenset(w for w in (folder / "vocab.txt").read_text(encoding="utf-8").split() if w.isalpha())


def unknown_terms(question: str, vocabulary: frozenset) -> list[str]:
    """Rare words of the question (RARE_MIN_LETTERS+ letters, not whole words of the embedder's
    vocabulary) that the KB never mentions, even misspelt (closeness 0.8): a question about
    "keratoconus" in a KB without it is not covered, however close its cataract passages score.
    [] when the embedder's vocabulary is not installed."""
    common = _common_words()
    if not common:
        return []
    rare = [w for w in re.findall(rf"[a-z]{{{RARE_MIN_LETTERS},}}", question.lower())
            if w not in common and w not in vocabulary]
    return [w for w in rare if not difflib.get_close_matches(w, vocabulary, n=1, cutoff=0.8)]


def notice(question: str, sources: list, vocabulary: frozenset = frozenset()) -> str:
    """The notice in the question's language, or "" when a passage covers it."""
    if covered(sources, question, vocabulary):
        return ""
    from medchat.app.triage.text import detect_language

    return NOTICE.get(detect_language(question), NOTICE["en"])
