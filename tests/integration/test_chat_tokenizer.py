"""ChatTokenizer (the chat path's tokenizer, no transformers import) gives what transformers' tokenizer
gives for the same folder: ids, text, special tokens, rendered chat templates; the rest is delegated."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from medchat.core.engine.tokenizer import ChatTokenizer
from tests.support.tokenizer_check import FANCY, check_same, pair


def test_it_matches_transformers_on_the_test_tokenizer(tiny_model_dir):
    check_same(*pair(tiny_model_dir))


def test_template_errors_and_sandbox_hold(tiny_model_dir):
    from jinja2.exceptions import SecurityError, TemplateError

    ours = ChatTokenizer.open(tiny_model_dir)
    with pytest.raises(TemplateError, match="bad role"):
        ours.apply_chat_template([{"role": "bad", "content": "x"}], chat_template=FANCY)
    with pytest.raises(SecurityError):  # the immutable sandbox: a template cannot change the caller's messages
        ours.apply_chat_template([{"role": "user", "content": "x"}],
                                 chat_template="{{ messages.append({'role': 'x'}) }}")


def test_what_it_does_not_do_is_answered_by_transformers(tiny_model_dir):
    ours, theirs = pair(tiny_model_dir)
    assert ours._full is None
    batch = ours(["a b", "a"], padding=True)
    assert batch["input_ids"] == theirs(["a b", "a"], padding=True)["input_ids"]
    assert ours.model_max_length == theirs.model_max_length
    ours.pad_token = ours.eos_token  # as load_base sets a missing pad token: the delegate sees it too
    assert ours.full.pad_token == ours.eos_token and ours.pad_token_id == theirs.eos_token_id
    fresh = ChatTokenizer.open(tiny_model_dir)
    fresh.unk_token = "<|im_start|>"  # set before the delegate loads: it gets the setting
    assert fresh.full.unk_token == "<|im_start|>"


def _rewrite(model_dir, tmp_path, **changes):
    out = tmp_path / "tok"
    shutil.copytree(model_dir, out)
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    (out / "tokenizer_config.json").write_text(json.dumps({**cfg, **changes}))
    return out


@pytest.mark.parametrize("changes", [{"tokenizer_class": "GPT2Tokenizer"}, {"clean_up_tokenization_spaces": True},
                                     {"add_bos_token": True},
                                     {"chat_template": [{"name": "default", "template": "x"}]}])
def test_a_folder_that_needs_more_is_left_to_transformers(tiny_model_dir, tmp_path, changes):
    from medchat.core.models import load_tokenizer

    folder = _rewrite(tiny_model_dir, tmp_path, **changes)
    if "chat_template" in changes:
        (folder / "chat_template.jinja").unlink(missing_ok=True)
    assert ChatTokenizer.open(folder) is None
    assert not isinstance(load_tokenizer(folder, light=True), ChatTokenizer)


def test_the_fast_engine_starts_and_answers_without_importing_transformers(tiny_model_dir):
    """Start, a streamed reply and the prompt guard's marker list (what a chat turn asks of the tokenizer)."""
    code = ("import sys; from medchat.core.engine import ChatEngine; e = ChatEngine(sys.argv[1]); "
            "from medchat.core.engine.protocol import collect; from medchat.core.settings import GenerationSettings; "
            "collect(e.stream([{'role': 'user', 'content': 'hi'}], GenerationSettings(max_new_tokens=4, seed=1))); "
            "from medchat.core.prompt_guard import tokenizer_markers; assert '<|im_end|>' in tokenizer_markers(e.tokenizer); "
            "print(type(e.tokenizer).__name__, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ChatTokenizer", "False"]


def test_a_malformed_tokenizer_file_is_one_clear_error(tiny_model_dir, tmp_path):
    from medchat.core.errors import UserError

    folder = _rewrite(tiny_model_dir, tmp_path)
    (folder / "tokenizer.json").write_text("{broken")
    with pytest.raises(UserError, match=r"cannot read .*tokenizer\.json .*pass another --base"):
        ChatTokenizer.open(folder)
