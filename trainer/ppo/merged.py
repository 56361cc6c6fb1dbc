"""Base + parent chain *merged* in memory + one new LoRA: the model the preference stages train.

Why merge here (pt/sft stack the parents as frozen adapters instead, see trainer.modeling): for rm,
ppo and dpo the reference is "the --from profile". With the parents merged into the in-memory base,
`with model.disable_adapter():` is exactly that profile, which is what PPO's KL anchor and trl's DPO
reference use; stacked parents would be disabled too and the anchor would become the raw base.
LoRA deltas add, so the installed chain [parents..., new] computes base + parents + new, the same
function that was trained. (On a 4-bit QLoRA base the merge re-quantizes the merged layers, a small
rounding change of the parents' deltas.)

Shared by trainer.stages.rm / ppo / dpo and by the reward scorer (`merge_chain`).
"""

from __future__ import annotations

from pathlib import Path

from medchat.core.errors import UserError
from medchat.core.models import base_id, fingerprint, pick_device, resolve_base
from medchat.core.profiles import ProfileStore
from trainer.modeling import TrainModel, load_base_model, load_tokenizer, lora_config, resolve_source

NEW_ADAPTER = "default"  # trl's DPOTrainer and peft's helpers expect this name


def merge_chain(model, links: list[tuple[str, Path]]):
    """Fold each (name, adapter dir) of a chain into the model's weights; returns the plain model."""
    from peft import PeftConfig, PeftModel

    for name, path in links:
        config = PeftConfig.from_pretrained(str(path))
        config.task_type = None  # a causal-LM adapter merges into a seq-cls model the same way
        config.inference_mode = True
        try:
            peft_model = PeftModel.from_pretrained(model, str(path), config=config)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise UserError(f"adapter of profile '{name}' does not fit this base model ({exc})") from None
        model = peft_model.merge_and_unload()
    return model


def _quiet_load(base_dir, cfg, device, task):
    """load_base_model, without transformers' report that the new `score` head is uninitialised."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    if task == "seq_cls":
        hf_logging.set_verbosity_error()
    try:
        return load_base_model(base_dir, cfg, device, task)
    finally:
        hf_logging.set_verbosity(level)


def check_stage_options(cfg) -> None:
    if cfg.model.continue_parent:
        raise UserError(f"--continue is not supported for --stage {cfg.stage}; it always trains a new adapter "
                        "on top of --from")


def load_merged(cfg, task: str = "causal", device: str | None = None,
                store: ProfileStore | None = None, add_lora: bool = True) -> TrainModel:
    """TrainModel whose model is a PeftModel: (base + merged --from chain) + new trainable LoRA.

    add_lora=False returns the plain merged model (trl's DPOTrainer adds the LoRA itself)."""
    from peft import get_peft_model

    check_stage_options(cfg)
    store = store or ProfileStore()
    base, parent = resolve_source(cfg.model, store)
    base_dir = resolve_base(base)
    fp = fingerprint(base_dir)
    if parent is not None and parent.base_fingerprint and parent.base_fingerprint != fp:
        raise UserError(f"--from {parent.name} was made for base '{parent.base}', whose weights differ from "
                        f"'{base}'; pass --base {parent.base} or train a new parent")
    device = device or pick_device(cfg.model.device or None)
    tok = load_tokenizer(base_dir, cfg.model.trust_remote_code)
    model, quantized = _quiet_load(base_dir, cfg, device, task)
    links = store.chain_dirs(parent) if parent is not None else []
    model = merge_chain(model, links)
    peft_model = get_peft_model(model, lora_config(cfg, task), adapter_name=NEW_ADAPTER) if add_lora else model
    if add_lora and not any(p.requires_grad for p in peft_model.parameters()):
        raise UserError("the LoRA target modules matched no layer of this model; check --lora-target-modules")
    chain = [*(parent.chain if parent else []), cfg.name]
    return TrainModel(model=peft_model, tokenizer=tok, base=base_id(base), base_dir=Path(base_dir), fingerprint=fp,
                      device=str(device), quantized=quantized, chain=chain, parent=parent, parents=[],
                      adapter=NEW_ADAPTER)


def template_of(cfg, tm: TrainModel) -> str:
    """The chat template the new profile will be used with: --template, else the parent's, else the tokenizer's."""
    from trainer.data.encoding import resolve_template

    override = cfg.data.template or (tm.parent.chat_template if tm.parent else "")
    return resolve_template(tm.tokenizer, override)
