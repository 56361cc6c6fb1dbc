"""The chat path's tokenizer: the model's `tokenizer.json` run by `tokenizers`, its chat template rendered
by jinja2 in a sandbox as transformers renders it, and no transformers import.

Why: `import transformers` costs ~0.8 s at every start (it reads ~1,700 of its own files to build its
lazy import table), a quarter of a warm start, and the chat needs only encoding, decoding, the special
tokens and the chat template. Anything else (padding, batches, tensors, `model_max_length`…) loads
transformers' own tokenizer on first use and is answered by it, so callers see one object.
`tests/integration/test_chat_tokenizer.py` checks every method against transformers' tokenizer.
"""

from __future__ import annotations

import functools
import json
import threading
from datetime import datetime
from pathlib import Path

# tokenizer_config classes that are the generic `tokenizers` backend itself (no model-specific Python)
GENERIC_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}
SPECIALS = ("bos_token", "eos_token", "pad_token", "unk_token")


def _special(value) -> str | None:
    """A special token as tokenizer_config writes it: a string, or an AddedToken dict with its content."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class ChatTokenizer:
    def __init__(self, model_dir: Path, backend, config: dict, chat_template: str | None):
        self._dir, self._tok = Path(model_dir), backend
        self._full = None
        self._lock = threading.Lock()
        self.chat_template = chat_template
        self.name_or_path = str(model_dir)
        for key in SPECIALS:
            setattr(self, key, _special(config.get(key)))
        extra = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
        self._extra = [t for t in map(_special, extra if isinstance(extra, list) else []) if t]

    @classmethod
    def open(cls, model_dir: Path) -> "ChatTokenizer | None":
        """The tokenizer of `model_dir`, or None where its config asks for more than this class does
        (a model-specific tokenizer class, cleanup of decoded spaces, BOS/EOS flags that transformers
        applies on top of tokenizer.json, named templates): then the caller loads transformers'
        tokenizer. A malformed tokenizer.json is a UserError."""
        model_dir = Path(model_dir)
        try:
            config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(config, dict) or config.get("tokenizer_class") not in GENERIC_CLASSES
                or any(config.get(k) for k in ("clean_up_tokenization_spaces", "add_bos_token", "add_eos_token"))
                or not (model_dir / "tokenizer.json").is_file()):
            return None
        template = config.get("chat_template")
        jinja = model_dir / "chat_template.jinja"
        if jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        if template is not None and not isinstance(template, str):
            return None
        from tokenizers import Tokenizer

        try:
            backend = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
            from medchat.core.errors import UserError

            raise UserError(f"cannot read {model_dir / 'tokenizer.json'} ({str(exc)[:120]}); restore the model's "
                            "tokenizer files or pass another --base") from None
        return cls(model_dir, backend, config, template)

    # --- what the chat path calls ----------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text, add_special_tokens: bool = True, **kwargs):
        if kwargs or not isinstance(text, str):
            return self.full(text, add_special_tokens=add_special_tokens, **kwargs)
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = False, **kwargs) -> str:
        if kwargs:
            return self.full.decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            tid = self._tok.token_to_id(tokens)
            return tid if tid is not None else self.unk_token_id
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self._tok.id_to_token(ids)
        return [self._tok.id_to_token(int(i)) for i in ids]

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(token)

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._id(self.pad_token)

    @property
    def unk_token_id(self) -> int | None:
        return self._id(self.unk_token)

    @property
    def all_special_tokens(self) -> list[str]:
        """The special tokens, each once: bos, eos, unk, pad, then the config's additional ones."""
        named = [getattr(self, key) for key in ("bos_token", "eos_token", "unk_token", "pad_token")]
        return list(dict.fromkeys(t for t in named + self._extra if t is not None))

    @property
    def all_special_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    @property
    def added_tokens_decoder(self) -> dict:
        """id -> tokenizers.AddedToken (its `.content` is the text), as tokenizer.json lists them."""
        return dict(sorted(self._tok.get_added_tokens_decoder().items()))

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {t.content: i for i, t in self.added_tokens_decoder.items()}

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def apply_chat_template(self, messages: list[dict], chat_template: str | None = None, tokenize: bool = True,
                            add_generation_prompt: bool = False, **kwargs):
        """The rendered conversation (a string), or its ids when `tokenize` (the rendered text holds its own
        special tokens, so none are added)."""
        if kwargs:  # tools, documents, return_dict…: transformers' own
            return self.full.apply_chat_template(messages, chat_template=chat_template, tokenize=tokenize,
                                                 add_generation_prompt=add_generation_prompt, **kwargs)
        template = chat_template or self.chat_template
        if template is None:
            raise ValueError("this tokenizer has no chat template; pass chat_template")
        specials = {key: getattr(self, key) for key in SPECIALS if getattr(self, key) is not None}
        text = _compiled(template).render(messages=[dict(m) for m in messages],
                                          add_generation_prompt=add_generation_prompt, **specials)
        return self.encode(text, add_special_tokens=False) if tokenize else text

    # --- everything else: transformers' tokenizer ------------------------------------------------
    @property
    def full(self):
        """transformers' tokenizer for the same folder, loaded once (with any special token set here)."""
        with self._lock:
            if self._full is None:
                from transformers import PreTrainedTokenizerFast

                full = PreTrainedTokenizerFast.from_pretrained(self._dir)
                for key in SPECIALS:
                    if getattr(self, key) is not None and getattr(full, key, None) != getattr(self, key):
                        setattr(full, key, getattr(self, key))
                if self.chat_template:
                    full.chat_template = self.chat_template
                self._full = full
            return self._full

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        full = self.__dict__.get("_full")
        if full is not None and (name in SPECIALS or name == "chat_template"):  # keep the delegate in step
            setattr(full, name, value)

    def __getattr__(self, name: str):
        if name.startswith("_"):  # private names are this object's own; never load transformers for them
            raise AttributeError(name)
        return getattr(self.full, name)


def _raise(message: str):
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # jinja's own tojson escapes HTML characters, which would change the prompt
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=8)
def _compiled(template: str):
    """A chat template compiled in jinja2's immutable sandbox with the settings and helpers chat templates
    are written for (trim_blocks, lstrip_blocks, loop controls, raise_exception, strftime_now, tojson)."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)
