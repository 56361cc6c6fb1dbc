"""Token choice and text streaming: role-tag stop markers, held-back text, tail trim, sampling."""

from __future__ import annotations

import pytest
import torch

from tests.support.fixtures_models import build_tokenizer
from medchat.core.engine.decode import ROLE_TAG, TAIL_GUARD, Sampler, TextStream, stop_token_ids
from medchat.core.settings import GenerationSettings


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("decode-tok"))


def feed(tok, text: str, near_budget: bool = False, cut_by_length: bool | None = None):
    """Push `text`'s token ids one by one like the engine does; return (chunks, tail, stream)."""
    stream = TextStream(tok)
    chunks = []
    for tid in tok(text, add_special_tokens=False)["input_ids"]:
        chunks.append(stream.push(tid, near_budget))
        if stream.stopped_by_marker:
            break
    tail = stream.finish(cut_by_length=bool(cut_by_length))
    return chunks, tail, stream


def emitted_prefixes(chunks):
    out, acc = [], ""
    for c in chunks:
        acc += c
        out.append(acc)
    return out


@pytest.mark.parametrize("text, kept", [
    ("Sure.\nUser: hi", "Sure."),
    ("Sure, rest. <HUMAN>: next", "Sure, rest."),
    ("Rest well.\n### Patient:\nok", "Rest well."),
    ("Fine.\n\npatient: and more", "Fine."),
    ("Drink fluids.\n<|user|> again", "Drink fluids."),
    ("Hello there\nAssistant:\nok", "Hello there"),
])
def test_invented_role_tags_are_never_emitted(tok, text, kept):
    chunks, tail, stream = feed(tok, text)
    assert stream.stopped_by_marker
    assert ("".join(chunks) + tail).rstrip() == kept  # a space before the tag may have gone out
    assert stream.text == kept
    for shown in emitted_prefixes(chunks):  # not even a partial tag is shown on the way
        assert kept.startswith(shown.rstrip()), shown


def test_a_reply_that_starts_with_a_role_tag_shows_nothing(tok):
    chunks, tail, stream = feed(tok, "User: what about tomorrow")
    assert stream.stopped_by_marker
    assert "".join(chunks) + tail == "" and stream.text == ""


def test_ordinary_text_passes_through_whole(tok):
    text = "Rest, drink fluids and see a doctor if the fever lasts. User guides help.\nThat is all."
    chunks, tail, stream = feed(tok, text)
    assert not stream.stopped_by_marker
    assert "".join(chunks) + tail == text


def test_role_tag_regex_does_not_fire_on_words_mid_line(tok):
    assert ROLE_TAG.search("the user: manual says so") is None
    assert ROLE_TAG.search("a doctor: someone who heals") is None
    assert ROLE_TAG.search("ok\nUser: hi") is not None


def test_incomplete_utf8_is_held_until_the_character_completes(tok):
    ids = tok("é", add_special_tokens=False)["input_ids"]
    assert len(ids) >= 2  # byte-level: one character, two tokens
    stream = TextStream(tok)
    shown = [stream.push(t, False) for t in ids]
    shown.append(stream.finish(False))
    assert all("\ufffd" not in s for s in shown)
    assert "".join(shown) == "é"


def test_near_budget_holds_back_the_unfinished_sentence(tok):
    first = "Rest at home and drink plenty of fluids."
    chunks, _, stream = feed(tok, first + " Then see a", near_budget=True, cut_by_length=False)
    assert "".join(chunks) == first  # only whole sentences go out while the budget may cut


def test_cut_by_length_drops_the_dangling_sentence(tok):
    chunks, tail, stream = feed(tok, "Rest well. Drink water and", near_budget=True, cut_by_length=True)
    assert "".join(chunks) + tail == "Rest well."
    assert stream.text == "Rest well."


def test_not_cut_flushes_everything_held_back(tok):
    chunks, tail, stream = feed(tok, "Rest well. Drink water", near_budget=True, cut_by_length=False)
    assert "".join(chunks) + tail == "Rest well. Drink water"


def test_cut_without_any_sentence_end_keeps_the_text(tok):
    chunks, tail, _ = feed(tok, "rest and fluids", near_budget=True, cut_by_length=True)
    assert "".join(chunks) + tail == "rest and fluids"


def test_stop_tokens_hold_eos_and_chatml_markers(tok):
    stops = stop_token_ids(tok)
    expected = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>")}
    assert tok.eos_token_id in stops
    assert stops == expected  # markers absent from the vocab (<|eot_id|>, </s>) add nothing


def test_tail_guard_is_smaller_than_default_budget():
    assert 0 < TAIL_GUARD < GenerationSettings().max_new_tokens


# --- sampling --------------------------------------------------------------------------------
def test_greedy_picks_the_argmax():
    logits = torch.tensor([0.1, 3.0, -1.0, 2.9])
    s = Sampler(GenerationSettings(temperature=0.0, repetition_penalty=1.0), "cpu")
    assert s(torch.tensor([[0]]), logits) == 1


def test_repetition_penalty_steers_greedy_away_from_repeats():
    logits = torch.tensor([0.1, 3.0, -1.0, 2.9])
    s = Sampler(GenerationSettings(temperature=0.0, repetition_penalty=1.5), "cpu")
    assert s(torch.tensor([[1]]), logits) == 3


def test_same_seed_same_samples_other_seed_differs():
    logits = torch.randn(400, generator=torch.Generator().manual_seed(0))
    ctx = torch.tensor([[0]])

    def draw(seed):
        s = Sampler(GenerationSettings(temperature=1.5, top_p=1.0, top_k=0, repetition_penalty=1.0, seed=seed), "cpu")
        return [s(ctx, logits) for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_top_k_one_is_deterministic_even_when_sampling():
    logits = torch.tensor([0.5, 0.2, 4.0, 0.1])
    s = Sampler(GenerationSettings(temperature=1.0, top_k=1, repetition_penalty=1.0, seed=3), "cpu")
    assert {s(torch.tensor([[0]]), logits) for _ in range(10)} == {2}
