"""`medchat triage --rebuild`: out-of-fold scoring never lets a model judge its own family, and the
thresholds it chooses keep the out-of-fold false alarms within budget."""

from __future__ import annotations

from medchat.app.triage import build
from medchat.app.triage.corpus import Row
from medchat.app.triage.model import Prediction
from medchat.app.triage.text import normalize


def _rows(n_families: int, emergency: bool, lang: str = "en") -> list[Row]:
    tag = "e" if emergency else "o"
    return [Row(family=f"{tag}{f}", lang=lang, emergency=emergency, category="cardiac",
                text=f"note {tag} {f} {k}", split="train") for f in range(n_families) for k in range(3)]


def test_out_of_fold_scores_each_message_with_a_model_that_never_saw_its_family(monkeypatch):
    rows = _rows(10, True) + _rows(10, False)
    family_of = {normalize(r.text): r.family for r in rows}
    fits = []

    class Spy:
        def __init__(self, seen):
            self.seen = seen

        def predict(self, norm):
            assert family_of[norm] not in self.seen, "scored by a model trained on its own family"
            return Prediction(0.5, 0.0, "cardiac", 1.0)

    def fake_fit(train_rows, meta=None, log=None):
        fits.append({r.family for r in train_rows})
        return Spy(fits[-1])

    monkeypatch.setattr(build, "fit", fake_fit)
    got = build.out_of_fold(rows, log=lambda _: None)
    assert set(got) == set(family_of)  # every message scored once
    assert len(fits) == build.FOLDS and all(fits)
    assert set.union(*fits) == {r.family for r in rows}  # every family trained on somewhere


def test_thresholds_stop_where_the_next_lower_one_would_exceed_the_alarm_budget():
    ordinary = _rows(34, False)  # 102 messages: the budget at 4% is 4 alarms
    emergencies = _rows(5, True)
    scores = {normalize(r.text): i / 200 for i, r in enumerate(ordinary)}  # 0.0 .. 0.505
    scores |= {normalize(r.text): 0.9 for r in emergencies}
    preds = {k: Prediction(v, 0.0, "cardiac", 1.0) for k, v in scores.items()}
    th = build.choose_thresholds(preds, ordinary + emergencies, self_harm=0.5)["en"]
    alarms = sum(v >= th for k, v in scores.items() if k.startswith("note o"))
    assert alarms <= build.MAX_FALSE_ALARMS * len(ordinary)
    lower = max(v for v in scores.values() if v < th)
    assert sum(v >= lower for k, v in scores.items() if k.startswith("note o")) > build.MAX_FALSE_ALARMS * len(ordinary)


def test_threshold_never_rises_above_one_half_even_when_alarms_exceed_the_budget():
    ordinary = _rows(10, False)
    preds = {normalize(r.text): Prediction(0.99, 0.0, "cardiac", 1.0) for r in ordinary}
    assert build.choose_thresholds(preds, ordinary, self_harm=0.5)["en"] == 0.5


def test_self_harm_threshold_spends_its_alarm_budget_and_stays_in_bounds():
    ordinary = _rows(100, False)  # 300 messages: the budget is a couple of alarms
    highs = [0.9, 0.8, 0.45, 0.4, 0.3]
    preds = {normalize(r.text): Prediction(0.0, highs[i] if i < len(highs) else 0.01, "self_harm", 1.0)
             for i, r in enumerate(ordinary)}
    th = build.choose_self_harm_threshold(preds, ordinary)
    budget = build.SELF_HARM_ALARMS * len(ordinary)
    assert sum(p.self_harm >= th for p in preds.values()) <= budget
    low, high = build.SELF_HARM_BOUNDS
    assert low <= th <= high and sum(p.self_harm >= th - 0.011 for p in preds.values()) > budget  # no lower one fits
    capped = {k: Prediction(0.0, 0.95, "self_harm", 1.0) for k in preds}
    assert build.choose_self_harm_threshold(capped, ordinary) == high  # ceiling: never stricter than this
    quiet = {k: Prediction(0.0, 0.01, "self_harm", 1.0) for k in preds}
    assert build.choose_self_harm_threshold(quiet, ordinary) == low  # floor: the head never fires on noise


def test_self_harm_thresholds_are_chosen_per_language():
    en, zh = _rows(100, False, "en"), _rows(100, False, "zh")
    zh = [Row(**{**r.__dict__, "family": "z" + r.family, "text": "z" + r.text}) for r in zh]
    # the Chinese ordinary messages score higher on the self-harm head: a pooled budget would go to them
    preds = {normalize(r.text): Prediction(0.0, 0.3 if i < 20 else 0.01, "self_harm", 1.0) for i, r in enumerate(zh)}
    preds |= {normalize(r.text): Prediction(0.0, 0.25 if i < 2 else 0.01, "self_harm", 1.0) for i, r in enumerate(en)}
    got = build.choose_self_harm_thresholds(preds, en + zh)
    assert set(got) == {"en", "zh"}
    assert got["en"] == 0.2  # 2 of 300 English messages reach 0.25: within its own 1% budget
    assert got["zh"] > 0.3  # 20 of 300 Chinese ones reach 0.3: the threshold must pass them


def test_the_triager_reads_the_self_harm_threshold_of_the_message_language():
    from medchat.app.triage.decide import Triager

    en, zh = "feeling a bit flat today", "今天有点低落"
    preds = {normalize(t): Prediction(0.1, 0.3, "self_harm", 1.0) for t in (en, zh)}
    triager = Triager(model=build._Replay(preds, {"en": 0.5, "zh": 0.5}, {"en": 0.2, "zh": 0.4}))
    assert triager.assess(en).emergency and triager.assess(en).category == "self_harm"
    assert not triager.assess(zh).emergency
    pooled = Triager(model=build._Replay(preds, {"en": 0.5, "zh": 0.5}, 0.25))  # older files: one number
    assert pooled.assess(en).emergency and pooled.assess(zh).emergency


def _labelled(n_families: int) -> list[Row]:
    """Families of three messages: emergencies share "chest crushing", ordinary ones "mild cold"; the
    family number makes each message's wording its own."""
    rows = []
    for f in range(n_families):
        emergency = f % 2 == 0
        words = "chest crushing" if emergency else "mild cold"
        category = ("cardiac", "stroke", "self_harm")[f // 2 % 3]
        rows += [Row(f"f{f}", "en", emergency, category, f"{words} w{f} v{k}", split="train") for k in range(3)]
    return rows


def _no_encoder(monkeypatch):
    from medchat.app.triage import encoder_fit

    monkeypatch.setattr(encoder_fit, "fit", lambda *a, **k: None)


def test_inference_weights_the_grams_as_the_fit_did_unseen_ones_included(monkeypatch):
    """The shipped model stores idf only for the columns it saw; a gram it never saw still lengthens the
    message's vector, exactly as `features.weighted` does at fit time, so a long message with unknown
    words is not read louder than the fit would have read it."""
    import numpy as np

    from medchat.app.triage import features

    _no_encoder(monkeypatch)
    model = build.fit(_labelled(12))
    idf_all = np.full(features.DIM, model.meta["idf_unseen"], dtype=np.float32)
    idf_all[model.cols] = model.idf
    for text in ("chest crushing w3 v1", "chest crushing and many words never seen before zq xj"):
        norm = normalize(text)
        x = features.weighted(features.matrix([norm]), idf_all)[:, model.cols].toarray()[0]
        assert np.allclose(model._ngram_logits(norm), x @ model.weights + model.bias, atol=1e-4)
    assert model.meta["idf_unseen"] >= model.idf.max()  # a gram in no training message is the rarest of all


def test_idf_weighs_a_rare_gram_above_a_common_one():
    from medchat.app.triage import features

    x = features.matrix([normalize(t) for t in ("fever", "fever cough", "fever rash")])
    idf, unseen = features.idf(x)
    common, rare = (features.columns(normalize(w)) for w in ("fever", "rash"))
    assert idf[rare].max() > idf[common].max()
    assert unseen > idf[rare].max()


def test_binary_heads_are_calibrated_so_the_separating_wording_reads_as_likely(monkeypatch):
    """The held-out sigmoid keeps the SVM's direction (a > 0) and maps a clear emergency above 0.5 and a
    clear ordinary message below it."""
    _no_encoder(monkeypatch)
    model = build.fit(_labelled(12))
    assert model.predict(normalize("chest crushing")).score > 0.5
    assert model.predict(normalize("mild cold")).score < 0.5


def test_held_out_margins_need_every_label_in_every_fold():
    import numpy as np
    from sklearn.svm import LinearSVC

    from medchat.app.triage import features

    rows = _labelled(12)
    x = features.matrix([normalize(r.text) for r in rows])
    y = np.array([r.emergency for r in rows])
    groups = [r.family for r in rows]
    margins = build._held_out_margins(LinearSVC(), x, y, groups)
    assert margins.shape == (len(rows),) and (margins[y] > 0).mean() > 0.5
    assert build._held_out_margins(LinearSVC(), x[:6], y[:6], groups[:6]) is None  # two families only
    assert build._platt(None, y) == (1.0, 0.0) and build._temperature(None, y) == 1.0


def test_category_temperature_sharpens_margins_that_name_the_category():
    import numpy as np

    y = np.array([0, 1, 2] * 20)
    margins = np.eye(3)[y] * 0.2 - 0.1  # the right category always highest, by little
    assert build._temperature(margins, y) > 5  # a softmax of the raw margins would be nearly flat
