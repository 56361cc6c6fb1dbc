"""One triage decision: rules and the learned model side by side, then the conversation on top.

- A message is an emergency if the rules fire or the model's score reaches the language's threshold
  (or, for self-harm, if P(self_harm) reaches its own lower threshold). The category comes from the
  rules when they fire (a matched pattern is the more specific evidence), else from the model.
- Self-harm is often told through its injury ("cut again, the bleeding won't stop", "took the whole
  box"): the rules then name bleeding or poisoning. When the self-harm head fires beside them, the
  crisis lines follow the injury's guidance (`crisis`). The reverse: when only the category head
  says self-harm (the self-harm head does not fire), the message is often another emergency told in
  despairing words (out of fold over train+dev, 55 of 72 such emergencies). Its category is then
  `general`: the steps that fit any emergency (call now, do not wait, do not drive), and the crisis
  lines follow them. The runner-up category was tried instead and was right only 31 times of 55.
- The newest message is also judged together with the recent user turns, so "it started an hour ago"
  after "my chest hurts" counts.
- Guidance already shown is not repeated every turn: it is shown again when the category changes,
  when the newest message on its own is an emergency with a higher score (worsening), and always for
  self-harm reported in the newest message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from medchat.app.triage.guidance import Region, guidance
from medchat.app.triage.rules import infant_fever_ruled_out, match_rules
from medchat.app.triage.text import detect_language, normalize

RECENT_TURNS = 3  # earlier user messages read together with the newest one
MAX_CHARS = 4000  # longer messages are judged on their head and tail (a long paste stays fast)
WORSENING = 0.1


@dataclass(frozen=True)
class Triage:
    emergency: bool
    category: str | None
    score: float
    guidance: str
    language: str
    evidence: tuple[str, ...] = ()
    source: str = ""  # rules | model | rules+model | conversation
    repeat: bool = False  # the same guidance was already shown in this conversation
    crisis: bool = False  # self-harm beside another category: its crisis lines follow that guidance

    @property
    def show(self) -> bool:
        return self.emergency and not self.repeat

    def to_dict(self) -> dict:
        d = asdict(self)
        d["evidence"] = list(self.evidence)
        return d


@dataclass
class Triager:
    """Decides per message and per conversation. `model` is a TriageModel, or None for rules only."""

    model: object = None
    region: Region | None = None
    _shown: list = field(default_factory=list)

    def assess(self, text: str) -> Triage:
        text = _clip(text or "")
        norm = normalize(text)
        language = detect_language(text)
        if not norm.strip():
            return Triage(False, None, 0.0, "", language)
        ruled = match_rules(norm)
        pred = self.model.predict(norm) if self.model is not None else None
        score = pred.score if pred else (1.0 if ruled else 0.0)
        self_harm = pred is not None and self._self_harm(pred, language)
        model_fires = pred is not None and (score >= self.model.threshold(language) or self_harm)
        if model_fires and pred.category == "infant_fever" and not self_harm and infant_fever_ruled_out(norm):
            model_fires = False
        if ruled:
            category, source = ruled[0], "rules+model" if model_fires else "rules"
            evidence = (f"rule: {ruled[1]}",)
        elif model_fires:
            category = "self_harm" if self_harm else pred.category
            source, evidence = "model", self._neighbours(text, category)
            if category == "self_harm" and not self_harm:
                category = "general"  # see the module docstring: only the category head said self-harm
        else:
            return Triage(False, pred.category if pred else None, score, "", language, (), "")
        # self-harm beside another category: a rule named its injury, or only the category head said self-harm
        crisis = category != "self_harm" and (self_harm or (not ruled and pred.category == "self_harm"))
        evidence += ("model: self_harm",) if crisis else ()
        return Triage(True, category, round(score, 4), _guidance(category, language, self.region, crisis), language,
                      evidence, source, crisis=crisis)

    def _self_harm(self, pred, language: str) -> bool:
        """The self-harm head's own threshold: one number, or one per language."""
        th = self.model.meta.get("self_harm_threshold", 0.5)
        if isinstance(th, dict):
            th = th.get(language, th.get("en", 0.5))
        return pred.self_harm >= float(th)

    def _neighbours(self, text: str, category: str) -> tuple[str, ...]:
        find = getattr(self.model, "neighbours", None)
        return tuple(f"like: {t}" for t in find(text, category)) if callable(find) else (f"model: {category}",)

    def assess_turn(self, text: str, recent: list[str] | tuple = ()) -> Triage:
        """The newest message in its conversation; updates what has been shown.

        Unless a rule fired on the newest message alone, it is also judged together with the recent
        user turns, and that reading wins when it is an emergency at least as sure: it knows more.
        """
        alone = self.assess(text)
        result = alone
        earlier = [m for m in recent if m and m.strip()][-RECENT_TURNS:]
        if earlier and not alone.source.startswith("rules"):
            joined = self.assess(" ".join([*earlier, text]))
            if joined.emergency and (not alone.emergency or joined.score >= alone.score):
                result = replace(joined, source="conversation", language=alone.language,
                                 guidance=_guidance(joined.category, alone.language, self.region, joined.crisis))
        if result.emergency:
            if self._already_shown(result, alone):
                result = replace(result, repeat=True)
            else:
                self._shown.append(result)
        return result

    def _already_shown(self, result: Triage, alone: Triage) -> bool:
        same = [t for t in self._shown if t.category == result.category]
        if not same:
            return False
        if alone.emergency and (alone.category == "self_harm" or alone.crisis):
            return False
        return not (alone.emergency and alone.score > max(t.score for t in same) + WORSENING)

    def reset(self) -> None:
        self._shown.clear()


def _guidance(category: str, language: str, region: Region | None, crisis: bool) -> str:
    text = guidance(category, language, region)
    return f"{text}\n{guidance('self_harm', language, region)}" if crisis else text


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS // 2] + " … " + text[-MAX_CHARS // 2:]
