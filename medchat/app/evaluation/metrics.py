"""Reference-based text metrics: ROUGE-1/2/L (rouge-score), BLEU-4 (sacrebleu), length statistics.

All scores are fractions in [0, 1] (sacrebleu's 0-100 BLEU is divided by 100), so every metric in a
report shares one scale.

Chinese: rouge-score's own tokenizer keeps only [a-z0-9] and would turn Chinese text into nothing,
so text holding CJK characters is segmented into words with jieba (other text keeps rouge-score's
tokenizer, so English scores are the standard ones). BLEU uses sacrebleu's 'zh' tokenizer (one
token per Chinese character, 13a for the rest) when any reference holds CJK, else '13a'.
"""

from __future__ import annotations

import logging
import re
import statistics
from dataclasses import dataclass

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_WORDISH = re.compile(r"\w")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text or ""))


def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # it announces its dictionary load on stderr otherwise
    return jieba


class MixedTokenizer:
    """rouge-score tokenizer protocol (`tokenize(text) -> list[str]`): jieba words for CJK text."""

    name = "jieba words for CJK text, rouge-score default otherwise"

    def tokenize(self, text: str) -> list[str]:
        if has_cjk(text):
            return [w for w in (t.strip().lower() for t in _jieba().lcut(text)) if w and _WORDISH.search(w)]
        from rouge_score import tokenize as rouge_tokenize

        return rouge_tokenize.tokenize(text, None)


_scorer = None


def rouge_scores(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """Per-sample ROUGE F-measures: [{"rouge1", "rouge2", "rougeL"}, ...]."""
    global _scorer
    if _scorer is None:
        from rouge_score import rouge_scorer

        _scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=MixedTokenizer())
    out = []
    for pred, ref in zip(predictions, references, strict=True):
        scores = _scorer.score(ref, pred)  # rouge-score's order is (target, prediction)
        out.append({k: float(scores[k].fmeasure) for k in ROUGE_TYPES})
    return out


def bleu_tokenizer(references: list[str]) -> str:
    return "zh" if any(has_cjk(r) for r in references) else "13a"


def corpus_bleu(predictions: list[str], references: list[str]) -> dict:
    """Corpus BLEU-4 over all samples: {"bleu4": fraction, "tokenizer", "signature"}."""
    from sacrebleu.metrics import BLEU

    tok = bleu_tokenizer(references)
    metric = BLEU(tokenize=tok)
    res = metric.corpus_score(list(predictions), [list(references)])
    return {"bleu4": res.score / 100.0, "tokenizer": tok, "signature": str(metric.get_signature())}


def sentence_bleu(predictions: list[str], references: list[str]) -> list[float]:
    """Per-sample BLEU-4 (sacrebleu's exponential smoothing, as for sentence-level use)."""
    from sacrebleu.metrics import BLEU

    metrics: dict[str, BLEU] = {}
    out = []
    for pred, ref in zip(predictions, references, strict=True):
        tok = bleu_tokenizer([ref])
        metric = metrics.setdefault(tok, BLEU(tokenize=tok, effective_order=True))
        out.append(metric.sentence_score(pred, [ref]).score / 100.0)
    return out


@dataclass
class LengthStats:
    mean: float
    median: float

    @classmethod
    def of(cls, lengths: list[int]) -> "LengthStats":
        if not lengths:
            return cls(0.0, 0.0)
        return cls(float(statistics.fmean(lengths)), float(statistics.median(lengths)))


def mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0
