"""ChatEngine: one resident base model, hot-swappable LoRA profiles, streaming generation.

This is the seam every front end (CLI, REPL, TUI, eval, bench) uses. It knows nothing of the KB,
safety or history; `medchat.app.session.ChatSession` composes those around it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from medchat.core import threads
from medchat.core.engine.decode import TAIL_GUARD, Sampler, TextStream, stop_token_ids
from medchat.core.engine.prompt import render_ids, template_for, trim_messages
from medchat.core.engine.protocol import GenerationStats, Stream, collect
from medchat.core.errors import UserError
from medchat.core.models import LoadOptions, base_id, gguf_source, load_base
from medchat.core.profiles import BASE_PROFILE, Profile, ProfileStore, require_chat
from medchat.core.settings import GenerationSettings


# A short, typical exchange: the int8 path calibrates its activation ranges on it at load time.
CALIBRATION_CHAT = [
    {"role": "system", "content": "You are a careful medical assistant. Admit uncertainty."},
    {"role": "user", "content": "I have had a sore throat and a mild fever for two days. Should I see a doctor?"},
    {"role": "assistant", "content": "A sore throat with a mild fever is usually caused by a virus and gets "
                                     "better within a week. Rest, drink fluids, and take paracetamol if needed. "
                                     "See a doctor if you cannot swallow, have trouble breathing, or the fever "
                                     "lasts more than three days."},
]

# Seconds of decoding between looks at the machine's load. By time, not tokens: two threads beside another
# busy program can fall to a few tokens a second, so a token count could hold the wrong count for seconds.
THREAD_CHECK_S = 0.25


def _fast_mode(parts, device: str, decode_mode: str | None, quantize: bool | None) -> str:
    """The fast path's decode mode: the one asked for, else the default for this device and dtype."""
    from medchat.core.engine import fast_llama

    float32 = parts.dtype == torch.float32
    if decode_mode is None:
        cpu_float = device == "cpu" and float32
        decode_mode = ((fast_llama.DEFAULT_CPU_MODE if cpu_float else "float") if quantize is None
                       else fast_llama.LOSSY_CPU_MODE if quantize and cpu_float else "float")
    if decode_mode != "float" and not float32:
        raise UserError(f"decode mode '{decode_mode}' needs a float32 base; pass --dtype float32 "
                        "or --decode-mode float")
    return decode_mode


class ChatEngine:
    def __init__(self, base: str | None = None, opts: LoadOptions | None = None,
                 store: ProfileStore | None = None, fast: bool = True, quantize: bool | None = None,
                 context_limit: int = 4096, decode_mode: str | None = None, adaptive_threads: bool = True):
        """fast=False forces the transformers+peft path. decode_mode picks the fast path's numerics
        (fast_llama.DECODE_MODES); None means fast_llama.DEFAULT_CPU_MODE.
        quantize is the older switch: False = "float", True = fast_llama.LOSSY_CPU_MODE on CPU float32.
        adaptive_threads: decode with at most the cores other processes leave free (core/threads.py),
        up to torch's thread count at load time; False keeps that count fixed (an explicit setting)."""
        from medchat.core.engine import fast_llama, llama_parts
        from medchat.core.engine.hf_backend import HFBackend
        from medchat.core.engine.llama_parts import LlamaParts

        if decode_mode is not None:
            try:
                decode_mode = fast_llama.canonical_mode(decode_mode)
            except ValueError as exc:
                raise UserError(f"{exc}; pass --decode-mode with one of those") from None
        self.opts = opts or LoadOptions()
        building: dict = {}

        def on_parts(parts: LlamaParts, device: str) -> None:
            """Build the fast backend in a thread while the tokenizer loads (the weight copies release
            the GIL; the tokenizer's imports mostly hold it). dynamic-int8 calibrates on tokenized text,
            so it waits for the tokenizer."""
            mode = _fast_mode(parts, device, decode_mode, quantize)
            if mode != "dynamic-int8":
                pool = ThreadPoolExecutor(1, thread_name_prefix="medchat-load")
                building["backend"] = pool.submit(fast_llama.FastLlama, parts, mode=mode, gguf=gguf_source(base))
                pool.shutdown(wait=False)

        model, self.tokenizer, self.info = load_base(base, self.opts, parts=fast, on_parts=on_parts)
        self.base_name = base_id(base)
        self.store = store or ProfileStore()
        self.config = model.config
        self.context_limit = min(int(getattr(model.config, "max_position_embeddings", context_limit)), context_limit)
        parts = model if isinstance(model, LlamaParts) else None
        self.info["loader"] = "safetensors" if parts is not None else "transformers"
        if parts is None and fast and fast_llama.supports(model) and self.info["device"] != "mps":
            parts = llama_parts.from_hf(model)
        if "backend" in building:
            self.backend = building["backend"].result()
        elif parts is not None:
            mode = _fast_mode(parts, self.info["device"], decode_mode, quantize)
            calib = (render_ids(self.tokenizer, CALIBRATION_CHAT, template_for(self.tokenizer), False)
                     if mode == "dynamic-int8" else None)
            self.backend = fast_llama.FastLlama(parts, mode=mode, calibration_ids=calib, gguf=gguf_source(base))
        else:
            self.backend = HFBackend(model)
        self.info["backend"] = self.backend.kind + ("-int8" if getattr(self.backend, "quantized", False) else "")
        self.info["decode_mode"] = getattr(self.backend, "mode", "transformers")
        if getattr(self.backend, "fallback_reason", ""):  # q4-gguf asked for (the default), float served
            self.info["decode_fallback"] = self.backend.fallback_reason
        self._stops = stop_token_ids(self.tokenizer)
        self._thread_limit = torch.get_num_threads() if adaptive_threads else 0
        if self._thread_limit and self.info["device"] == "cpu":
            threads.watch()
        self._lock = threading.RLock()
        self.profile: Profile = self.store.get(BASE_PROFILE)
        self._keys: dict[tuple, str] = {}  # adapter files' identity -> backend cache key

    # --- profiles --------------------------------------------------------------------------
    def check_profile(self, profile: Profile) -> None:
        require_chat(profile, hint=f"pass it as --reward {profile.name} instead")
        if profile.is_base:
            return
        if profile.base_fingerprint and profile.base_fingerprint != self.info["fingerprint"]:
            raise UserError(f"profile '{profile.name}' was made for base '{profile.base}', not the loaded "
                            f"'{self.base_name}'; start with --base {profile.base}")

    def use(self, name: str) -> Profile:
        """Activate a profile's adapter chain (loaded once, then cached); 'base' disables adapters."""
        from medchat.core.engine.lora_weights import UnsupportedAdapter

        profile = self.store.get(name)
        self.check_profile(profile)
        chain = [] if profile.is_base else self._cache_keys(self.store.chain_dirs(profile))
        with self._lock:
            try:
                self.backend.set_chain(chain, allow_pickle=profile.allow_pickle)
            except UnsupportedAdapter as exc:
                raise UserError(f"profile '{name}' uses a LoRA feature the fast CPU path lacks ({exc}); "
                                "start medchat with --no-fast to use it") from None
            except (ValueError, RuntimeError) as exc:
                raise UserError(f"profile '{name}' does not fit the loaded base '{self.base_name}' ({exc}); "
                                "it was probably made for another base model") from None
            self.profile = profile
        return profile

    def _cache_keys(self, chain: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
        """Backends cache adapters by key. Keys are opaque ('adapterN'): peft refuses names with '.', and
        a profile removed and reinstalled under the same name (new files) must not reuse the old weights."""
        out = []
        for name, path in chain:
            files = sorted(path.glob("adapter_model.*"))
            version = (name, str(path), path.stat().st_ino if path.exists() else 0,
                       *[(f.stat().st_ino, f.stat().st_mtime_ns, f.stat().st_size) for f in files])
            out.append((self._keys.setdefault(version, f"adapter{len(self._keys)}"), path))
        return out

    # --- prompts ---------------------------------------------------------------------------
    def template(self) -> str:
        return template_for(self.tokenizer, self.profile.chat_template)

    def prompt_ids(self, messages: list[dict], max_new_tokens: int = 256) -> list[int]:
        budget = max(16, self.context_limit - max_new_tokens)
        try:
            _, ids = trim_messages(self.tokenizer, messages, budget, self.template())
        except UserError:
            if budget >= self.context_limit - 16 or not self._fits(messages, self.context_limit - 16):
                raise  # the system prompt alone is too long, whatever the reply length
            # the room reserved for the reply, not the system prompt, is what leaves too little
            raise UserError(f"max_new_tokens {max_new_tokens} leaves {budget} of this model's {self.context_limit} "
                            f"context tokens for the prompt, too few for the system prompt and the message; lower it, "
                            f"e.g. /set max_new_tokens {max(16, self.context_limit // 4)}") from None
        return ids

    def _fits(self, messages: list[dict], budget: int) -> bool:
        try:
            trim_messages(self.tokenizer, messages, budget, self.template())
        except UserError:
            return False
        return True

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.prompt_ids(messages, 0))

    # --- generation ------------------------------------------------------------------------
    def _fit_threads(self) -> None:
        if self._thread_limit and self.info["device"] == "cpu":
            n = threads.budget(self._thread_limit)
            if n != torch.get_num_threads():
                torch.set_num_threads(n)

    def stream(self, messages: list[dict], settings: GenerationSettings | None = None,
               cancel: threading.Event | None = None, lead: str = "") -> Stream:
        """Yield text chunks of the reply, then return its GenerationStats (see protocol.collect).
        Set `cancel` from any thread to stop after the next token. `lead`: text the reply starts with,
        decided by the caller (the session's KB lead sentence); it is yielded first, is part of the
        reply's text, and the model continues after it."""
        settings = settings or GenerationSettings()
        with self._lock:
            return (yield from self._stream_locked(messages, settings, cancel, lead))

    def _stream_locked(self, messages, settings, cancel, lead="") -> Stream:
        t0 = time.perf_counter()
        self._fit_threads()
        lead_ids = self.tokenizer.encode(lead, add_special_tokens=False) if lead else []
        ids = self.prompt_ids(messages, settings.max_new_tokens + len(lead_ids)) + lead_ids
        stats = GenerationStats(prompt_tokens=len(ids))
        cached = self.backend.cached_ids
        common = 0
        for a, b in zip(cached, ids):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # always recompute the last prompt token for its logits
        self.backend.truncate(common)
        stats.reused_tokens = common
        logits = self.backend.forward(ids[common:])
        checked = time.perf_counter()
        sampler = Sampler(settings, logits.device)
        # the repetition penalty sees only the reply so far: over the prompt it would push the model away
        # from the words of the KB passages it is meant to restate
        context = torch.tensor([lead_ids], dtype=torch.long).reshape(1, -1)  # the lead is reply so far
        text = TextStream(self.tokenizer, lead_ids)
        if text.text:
            yield text.text
        reason = "length"
        for step in range(settings.max_new_tokens):
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            token = sampler(context, logits.cpu())
            if step == 0:
                stats.ttft_s = time.perf_counter() - t0
            if token in self._stops:
                reason = "eos"
                break
            stats.completion_tokens += 1
            near = settings.max_new_tokens - step <= TAIL_GUARD
            delta = text.push(token, near)
            if delta:
                yield delta
            if text.stopped_by_marker:
                reason = "marker"
                break
            context = torch.cat([context, torch.tensor([[token]])], 1)
            if time.perf_counter() - checked >= THREAD_CHECK_S:
                self._fit_threads()  # another process may have started or stopped since
                checked = time.perf_counter()
            if step + 1 < settings.max_new_tokens:
                logits = self.backend.forward([token])
        tail = text.finish(cut_by_length=reason == "length")
        if tail:
            yield tail
        stats.stop_reason = reason
        stats.text = text.text
        stats.total_s = time.perf_counter() - t0
        if reason == "marker":  # the cache holds invented-turn tokens; drop them for exact reuse
            self.backend.truncate(len(ids))
        return stats

    def generate(self, messages: list[dict], settings: GenerationSettings | None = None) -> str:
        return collect(self.stream(messages, settings))[0]

    # --- for evaluation and bench (protocol.Engine) -------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.backend.reset()

    def hf_model(self):
        """The transformers model (peft-wrapped once an adapter is loaded), or None on the fast path."""
        get = getattr(self.backend, "hf_model", None)
        return get() if get is not None else None

    @property
    def stop_ids(self) -> set[int]:
        return self._stops

    @property
    def device(self):
        return self.backend.device
