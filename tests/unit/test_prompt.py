"""Prompt building: chat template, fallback template, trimming history to the context budget."""

from __future__ import annotations

import pytest

from tests.support.fixtures_models import CHATML, build_tokenizer
from medchat.core.engine.prompt import FALLBACK_TEMPLATE, render_ids, template_for, trim_messages
from medchat.core.errors import UserError

SYSTEM = {"role": "system", "content": "Be brief."}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("prompt-tok"))


def chat(n_exchanges: int, new: str = "And now?") -> list[dict]:
    msgs = [SYSTEM]
    for i in range(n_exchanges):
        msgs += [{"role": "user", "content": f"Question {i}: is a cough with fever serious?"},
                 {"role": "assistant", "content": f"Answer {i}: rest, drink fluids, see a doctor."}]
    return msgs + [{"role": "user", "content": new}]


def n_tokens(tok, msgs) -> int:
    return len(render_ids(tok, msgs, CHATML))


def test_template_prefers_override_then_tokenizer_then_fallback(tok):
    assert template_for(tok) == tok.chat_template
    assert template_for(tok, "{{ x }}") == "{{ x }}"

    class Bare:
        chat_template = None

    assert template_for(Bare()) == FALLBACK_TEMPLATE


def test_render_ends_with_the_assistant_turn_opener(tok):
    text = tok.decode(render_ids(tok, chat(0), CHATML))
    assert text.startswith("<|im_start|>system\nBe brief.")
    assert text.endswith("<|im_start|>assistant\n")


def test_fallback_template_marks_roles_for_the_stop_list(tok):
    text = tok.decode(render_ids(tok, chat(1), FALLBACK_TEMPLATE))
    assert text.startswith("Be brief.")
    assert "### Patient:\nQuestion 0" in text and text.rstrip().endswith("### Doctor:")


def test_everything_kept_when_it_fits(tok):
    msgs = chat(3)
    kept, ids = trim_messages(tok, msgs, 10_000, CHATML)
    assert kept == msgs and ids == render_ids(tok, msgs, CHATML)


def test_trimming_keeps_system_and_drops_oldest_exchanges_first(tok):
    msgs = chat(6)
    full = n_tokens(tok, msgs)
    budget = n_tokens(tok, [SYSTEM, *msgs[-5:]])  # room for exactly the two newest exchanges + question
    assert budget < full
    kept, ids = trim_messages(tok, msgs, budget, CHATML)
    assert len(ids) <= budget
    assert kept[0] == SYSTEM
    assert kept[1:] == msgs[-5:]  # a suffix of the turns: the oldest went first
    assert [m["role"] for m in kept[1:]] == ["user", "assistant", "user", "assistant", "user"]


def test_trimming_drops_whole_exchanges_so_roles_alternate(tok):
    msgs = chat(6)
    assert msgs[-6]["role"] == "assistant"
    budget = n_tokens(tok, [SYSTEM, *msgs[-6:]])  # room for an orphaned reply + two exchanges + question
    kept, ids = trim_messages(tok, msgs, budget, CHATML)
    assert len(ids) <= budget
    assert kept[1:] == msgs[-5:]  # the reply went with its question: never starts on an assistant turn


def test_a_single_oversize_message_is_cut_not_crashing(tok):
    question = " ".join(f"symptom{i} lasted {i} days." for i in range(300)) + " What should I do?"
    msgs = [SYSTEM, {"role": "user", "content": question}]
    budget = 120
    kept, ids = trim_messages(tok, msgs, budget, CHATML)
    assert len(ids) <= budget
    assert kept[0] == SYSTEM
    assert 0 < len(kept[1]["content"]) < len(question)
    assert question.endswith(kept[1]["content"])  # the head is cut, the question at the end stays


def test_oversize_newest_message_after_history_still_fits(tok):
    msgs = chat(3, new="please help " * 400)
    kept, ids = trim_messages(tok, msgs, 100, CHATML)
    assert len(ids) <= 100 and kept[0] == SYSTEM and kept[-1]["role"] == "user" and len(kept) == 2


def test_system_prompt_too_long_for_the_budget_is_a_user_error(tok):
    long_system = {"role": "system", "content": "Always answer with care. " * 60}
    with pytest.raises(UserError, match="system prompt"):
        trim_messages(tok, [long_system, {"role": "user", "content": "hi"}], 64, CHATML)
    with pytest.raises(UserError, match="system prompt"):  # even with history to drop first
        trim_messages(tok, [long_system, *chat(3)[1:]], 64, CHATML)
