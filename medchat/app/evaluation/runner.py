"""`medchat eval`: generate replies per profile on a held-out dataset, score them, write the report.

Outputs (written in a staging dir, renamed into place when complete): predictions.jsonl, metrics.json,
report.md, scores.png, lengths.png.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core import paths
from medchat.core.errors import UserError
from medchat.core.profiles import require_chat
from medchat.app.evaluation import metrics as M
from medchat.app.evaluation.samples import Sample, load_samples
from medchat.core.models import LoadOptions
from medchat.core.settings import EVAL_GENERATION, GenerationSettings

OUTPUT_FILES = ("predictions.jsonl", "metrics.json", "report.md", "scores.png", "lengths.png")


@dataclass
class EvalOptions:
    profiles: list[str]
    dataset: str
    dataset_dir: str | None = None
    limit: int | None = None
    out: str | None = None
    reward: str | None = None
    base: str | None = None
    load: LoadOptions = field(default_factory=LoadOptions)
    batch_size: int = 8
    generation: GenerationSettings = field(default_factory=lambda: EVAL_GENERATION)
    encoder: str | None = None
    encoder_layer: int | None = None
    idf: bool = False
    sequential: bool = False  # engine one prompt at a time instead of batched generate
    fast: bool = True  # with sequential: allow the engine's fast CPU path
    system: str | None = None
    skip_bad: bool = False
    quiet: bool = False


def parse_profiles(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))
    if not names:
        raise UserError("--profiles needs at least one profile name, e.g. --profiles base,covid-sft")
    return names


def settings_of(o: EvalOptions) -> GenerationSettings:
    return GenerationSettings().with_values(o.generation.to_dict())  # UserError with the allowed range on nonsense


def out_dir(out: str | None, prefix: str = "eval") -> Path:
    if out is None:
        root = paths.runs_dir() / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
        final, n = root, 1
        while final.exists():
            n += 1
            final = root.with_name(f"{root.name}-{n}")
        return final
    final = Path(out).expanduser().resolve()
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / "metrics.json").exists())):
        raise UserError(f"--out '{out}' exists and is not an earlier eval output; choose a new or empty folder")
    return final


def _say(o: EvalOptions, text: str) -> None:
    if not o.quiet:
        print(f"eval: {text}", file=sys.stderr, flush=True)


def check_profiles(store, names: list[str], reward_hint: bool = True, base: str | None = None):
    """The named profiles; unknown names and reward profiles fail here, before any model loads. A shipped
    profile not yet installed (an eval before the first chat) is installed first, as chat would."""
    from medchat.app.builtin_profiles import install_shipped, shipped

    ship = shipped()
    if any(not store.exists(n) and n in ship for n in names):
        install_shipped(store, base)
    profiles = [store.get(n) for n in names]
    for p in profiles:
        require_chat(p, "write replies", f"pass it as --reward {p.name} instead" if reward_hint else "")
    return profiles


def base_of(base: str | None, profiles) -> str | None:
    """--base wins; otherwise the first named profile's own base (None: the default base)."""
    if base:
        return base
    named = [p.base for p in profiles if not p.is_base and p.base]
    return named[0] if named else None


def _generate(engine, o: EvalOptions, samples: list[Sample], settings) -> dict[str, list]:
    from medchat.app.evaluation.generate import generate_batched, generate_sequential

    replies = {}
    for name in o.profiles:
        engine.use(name)
        t0 = time.perf_counter()
        prompts = [s.prompt for s in samples]
        if o.sequential or engine.hf_model() is None:
            replies[name] = generate_sequential(engine, prompts, settings)
        else:
            replies[name] = generate_batched(engine, prompts, settings, o.batch_size)
        _say(o, f"{name}: {len(samples)} replies in {time.perf_counter() - t0:.1f} s")
    return replies


def run_eval(o: EvalOptions) -> dict:
    """Run the whole evaluation; return the metrics object (also written to metrics.json)."""
    from medchat.app.evaluation.bertscore import BertScorer
    from medchat.app.evaluation.reward import check_reward_profile, load_reward_scorer, score_replies
    from medchat.core.profiles import ProfileStore

    if o.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {o.batch_size}")
    settings = settings_of(o)
    store = ProfileStore()
    profiles = check_profiles(store, o.profiles, base=o.base)
    if o.reward:
        check_reward_profile(store, o.reward)
    final = out_dir(o.out)
    samples, ds_info = load_samples(o.dataset, o.dataset_dir, o.limit, o.skip_bad, o.system)
    _say(o, f"{len(samples)} samples from '{ds_info.get('name', o.dataset)}'")
    scorer = BertScorer(o.encoder, o.encoder_layer, o.idf, batch_size=max(8, o.batch_size))  # fail fast

    from medchat.core.engine import ChatEngine

    engine = ChatEngine(base_of(o.base, profiles), o.load, store=store, fast=o.sequential and o.fast)
    mode = "sequential" if o.sequential or engine.hf_model() is None else "batched"
    _say(o, f"base {engine.base_name} on {engine.info['device']} ({engine.info['backend']}), {mode} generation")
    replies = _generate(engine, o, samples, settings)
    tok, info = engine.tokenizer, dict(engine.info)
    prompt_tokens = {}
    for name in o.profiles:  # the template may differ per profile
        engine.use(name)
        prompt_tokens[name] = [len(engine.prompt_ids(s.prompt, settings.max_new_tokens)) for s in samples]
    base_name = engine.base_name
    del engine
    gc.collect()

    def ntok(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    refs = [s.reference for s in samples]
    ref_lengths = [ntok(r) for r in refs]
    reward_scorer = load_reward_scorer(o.reward) if o.reward else None
    per_profile, rows, lengths = {}, [], {}
    for name in o.profiles:
        preds = [r.text for r in replies[name]]
        rouge = M.rouge_scores(preds, refs)
        sent_bleu = M.sentence_bleu(preds, refs)
        bleu = M.corpus_bleu(preds, refs)
        p, r, f = scorer.score(preds, refs)
        lens = [ntok(t) for t in preds]
        lengths[name] = lens
        stats = M.LengthStats.of(lens)
        entry = {k: M.mean([x[k] for x in rouge]) for k in M.ROUGE_TYPES}
        entry.update(bleu4=bleu["bleu4"], bertscore_precision=M.mean(p), bertscore_recall=M.mean(r),
                     bertscore_f1=M.mean(f), reply_tokens_mean=stats.mean, reply_tokens_median=stats.median,
                     samples=len(preds),
                     stop_reasons={k: sum(1 for x in replies[name] if x.stop_reason == k)
                                   for k in ("eos", "marker", "length")})
        rewards = None
        if reward_scorer is not None:
            convs = [s.prompt + [{"role": "assistant", "content": t}] for s, t in zip(samples, preds)]
            rewards = score_replies(reward_scorer, convs, o.batch_size)
            entry["reward_mean"] = M.mean(rewards)
        per_profile[name] = entry
        for i, s in enumerate(samples):
            rows.append({"profile": name, "index": i, "where": s.where, "prompt": s.prompt, "reference": s.reference,
                         "prediction": preds[i], "prompt_tokens": prompt_tokens[name][i],
                         "reference_tokens": ref_lengths[i], "prediction_tokens": lens[i],
                         "completion_tokens": replies[name][i].completion_tokens,
                         "stop_reason": replies[name][i].stop_reason,
                         **{k: round(rouge[i][k], 6) for k in M.ROUGE_TYPES}, "bleu4": round(sent_bleu[i], 6),
                         "bertscore_f1": round(f[i], 6),
                         **({"reward": rewards[i]} if rewards is not None else {})})
    ref_stats = M.LengthStats.of(ref_lengths)
    result = {
        "out": str(final),
        "dataset": ds_info,
        "base": {"name": base_name, "fingerprint": info.get("fingerprint"), "device": info.get("device"),
                 "dtype": info.get("dtype"), "backend": info.get("backend"), "decode_mode": info.get("decode_mode")},
        "generation": {"mode": mode, "batch_size": o.batch_size if mode == "batched" else 1, **settings.to_dict()},
        "rouge": {"tokenizer": M.MixedTokenizer.name, "measure": "f"},
        "bleu": {k: v for k, v in bleu.items() if k != "bleu4"},
        "bertscore": scorer.describe(),
        "reward": {"profile": o.reward} if o.reward else None,
        "reference": {"reply_tokens_mean": ref_stats.mean, "reply_tokens_median": ref_stats.median},
        "profiles": per_profile,
    }
    lengths["(reference)"] = ref_lengths
    _write(final, result, rows, lengths)
    _say(o, f"wrote {final}")
    return result


def _write(final: Path, result: dict, rows: list[dict], lengths: dict) -> None:
    from medchat.app.evaluation import report

    with paths.staging_dir(final) as tmp:
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        charts = [report.scores_chart(result, tmp / "scores.png"), report.lengths_chart(lengths, tmp / "lengths.png")]
        (tmp / "report.md").write_text(report.markdown(result, [str(c) for c in charts]), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
