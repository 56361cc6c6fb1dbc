"""Loading a base (+ optional parent adapter chain) with a new trainable LoRA/QLoRA adapter.

Public API (used by every stage):

    tm = load_for_training(cfg, device=None, task="causal")   # -> TrainModel
    tm.model          # a peft PeftModel; only tm.adapter's params require grad
    tm.tokenizer, tm.base (manifest id), tm.base_dir, tm.fingerprint, tm.device, tm.quantized
    tm.chain          # the new profile's chain: [parent chain..., cfg.name]
    tm.parent         # the --from Profile or None
    save_adapter(tm, out_dir)         # standard PEFT dir (adapter_config.json + adapter_model.safetensors)
    load_adapter_weights(tm, dir)     # put saved trainable weights back (resume, best checkpoint)
    trainable_params(tm) / make_optimizer(tm, cfg.training) / make_scheduler(opt, cfg.training, steps)
    resolve_source(cfg.model) -> (base string, parent Profile | None)   # no model loading
    load_tokenizer(base_dir, trust_remote_code=False)

task="seq_cls" loads AutoModelForSequenceClassification(num_labels=1) (reward models); the score
head is saved with the adapter (modules_to_save).

Stacking (--from): every adapter of the parent's chain is loaded into one PeftModel under internal
names (parent_0, parent_1, ...), all are activated together with the new adapter ("new_adapter"), and the
parents are then frozen explicitly (peft's set_adapter marks every active adapter trainable). We chose
this over merging parents into the base because it works the same for 4-bit (QLoRA) bases, where a
merge would re-quantize and change the parents. LoRA deltas add up, so the model trained is exactly
base + parents + new. --continue instead loads the last parent adapter itself as the trainable one.

Merging (merge_parents=True; rm, ppo, dpo; `load_merged`): for these stages the reference is "the
--from profile". With the parents merged into the in-memory base, `with model.disable_adapter():` is
exactly that profile, which is what PPO's KL anchor and trl's DPO reference use; stacked parents would
be disabled too and the anchor would become the raw base. LoRA deltas add, so the installed chain
[parents..., new] computes base + parents + new, the same function that was trained. (On a 4-bit
QLoRA base the merge re-quantizes the merged layers, a small rounding change of the parents' deltas.)
`merge_chain` is also what the reward scorer uses; `template_of(cfg, tm)` is the new profile's template.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core.errors import UserError
from medchat.core.models import DEFAULT_BASE, base_id, fingerprint, pick_device, resolve_base
from medchat.core.profiles import ADAPTER_WEIGHTS, Profile, ProfileStore, require_chat

# bitsandbytes (imported by peft) warns on every CPU start about an optional kernels package; the
# fallback it uses is fine, so keep the user's terminal clean
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

TRAIN_ADAPTER = "new_adapter"  # not "train": ModuleDict keys may not shadow nn.Module attributes
NEW_ADAPTER = "default"  # the merged-parent stages' adapter: trl's DPOTrainer and peft's helpers expect it
WEIGHTS = ADAPTER_WEIGHTS


@dataclass
class TrainModel:
    model: object
    tokenizer: object
    base: str
    base_dir: Path
    fingerprint: str
    device: str
    quantized: bool
    chain: list[str]
    parent: Profile | None = None
    parents: list[str] = field(default_factory=list)  # internal peft names of the frozen parents
    adapter: str = TRAIN_ADAPTER


def resolve_source(margs, store: ProfileStore | None = None) -> tuple[str, Profile | None]:
    """The base to load and the parent profile for --from; refuses a --base that differs from the parent's."""
    if not margs.from_profile or margs.from_profile == "base":
        return margs.base or DEFAULT_BASE, None
    store = store or ProfileStore()
    parent = store.get(margs.from_profile)
    require_chat(parent, "be stacked on", "--from takes a chat profile")
    if not parent.chain:
        raise UserError(f"--from {parent.name}: its manifest lists no adapter chain")
    parent_base = parent.base or DEFAULT_BASE
    if margs.base and base_id(margs.base) != base_id(parent_base):
        if not parent.base_fingerprint or fingerprint(resolve_base(margs.base)) != parent.base_fingerprint:
            raise UserError(f"--from {parent.name} was trained on base '{parent_base}', not '{margs.base}'; "
                            f"drop --base (the parent's base is used) or pass --base {parent_base}")
    return parent_base, parent


def load_tokenizer(base_dir: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _dtype(training, quantized: bool):
    import torch

    if training.bf16:
        return torch.bfloat16
    if training.fp16:
        return torch.float16
    return torch.float32


def load_base_model(base_dir: Path, cfg, device: str, task: str = "causal"):
    """The frozen base for training: float (LoRA) or 4-bit NF4 + double quant, bf16 compute (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    quantized = cfg.model.method == "qlora"
    kwargs: dict = {"dtype": _dtype(cfg.training, quantized), "trust_remote_code": cfg.model.trust_remote_code,
                    "attn_implementation": "sdpa"}
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": device}
    cls = AutoModelForSequenceClassification if task == "seq_cls" else AutoModelForCausalLM
    if task == "seq_cls":
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(base_dir, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise UserError(f"'{base_dir}' needs custom code; re-run with --trust-remote-code if you trust it") from None
        raise
    except ImportError as exc:  # bitsandbytes backend missing for this device
        raise UserError(f"--method qlora cannot load a 4-bit base here ({exc}); use --method lora") from None
    if not quantized:
        model.to(device)
    model.config.use_cache = False
    if task == "seq_cls" and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    gc = cfg.training.gradient_checkpointing
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, quantized


def lora_config(cfg, task: str = "causal"):
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=targets, bias="none",
                      task_type="SEQ_CLS" if task == "seq_cls" else "CAUSAL_LM")


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


def load_for_training(cfg, device: str | None = None, task: str = "causal",
                      store: ProfileStore | None = None, merge_parents: bool = False,
                      add_lora: bool = True) -> TrainModel:
    """The one parent-chain loader: base + the --from chain + one new trainable LoRA adapter.

    merge_parents=False (pt, sft): the parents are stacked as frozen, active adapters (parent_0, ...);
    --continue trains the last one. merge_parents=True (rm, ppo, dpo): the chain is folded into the
    in-memory base so `model.disable_adapter()` is exactly the --from profile (the reference); the
    new adapter is named NEW_ADAPTER. add_lora=False (merged only) returns the plain merged model
    (trl's DPOTrainer adds the LoRA itself)."""
    from peft import PeftModel, get_peft_model

    if merge_parents and cfg.model.continue_parent:
        raise UserError(f"--continue is not supported for --stage {cfg.stage}; it always trains a new adapter "
                        "on top of --from")
    store = store or ProfileStore()
    base, parent = resolve_source(cfg.model, store)
    base_dir = resolve_base(base)
    fp = fingerprint(base_dir)
    if parent is not None and parent.base_fingerprint and parent.base_fingerprint != fp:
        raise UserError(f"--from {parent.name} was made for base '{parent.base}', whose weights differ from "
                        f"what '{base}' now holds; reinstall the parent or retrain it")
    device = device or pick_device(cfg.model.device or None)
    tok = load_tokenizer(base_dir, cfg.model.trust_remote_code)
    model, quantized = _quiet_load(base_dir, cfg, device, task)
    links = store.chain_dirs(parent) if parent is not None else []
    chain = [*(parent.chain if parent else [])]
    if merge_parents:
        model = merge_chain(model, links)
        peft_model = get_peft_model(model, lora_config(cfg, task), adapter_name=NEW_ADAPTER) if add_lora else model
        if add_lora and not any(p.requires_grad for p in peft_model.parameters()):
            raise UserError("the LoRA target modules matched no layer of this model; check --lora-target-modules")
        return TrainModel(model=peft_model, tokenizer=tok, base=base_id(base), base_dir=Path(base_dir),
                          fingerprint=fp, device=str(device), quantized=quantized, chain=[*chain, cfg.name],
                          parent=parent, parents=[], adapter=NEW_ADAPTER)
    frozen = links[:-1] if cfg.model.continue_parent else links
    names = [f"parent_{i}" for i in range(len(frozen))]
    if not links:
        peft_model = get_peft_model(model, lora_config(cfg, task), adapter_name=TRAIN_ADAPTER)
    else:
        peft_model = None
        for internal, (_, path) in zip(names, frozen):
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, str(path), adapter_name=internal)
            else:
                peft_model.load_adapter(str(path), adapter_name=internal)
        if cfg.model.continue_parent:
            last = str(links[-1][1])
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, last, adapter_name=TRAIN_ADAPTER, is_trainable=True)
            else:
                peft_model.load_adapter(last, adapter_name=TRAIN_ADAPTER, is_trainable=True)
        else:
            peft_model.add_adapter(TRAIN_ADAPTER, lora_config(cfg, task))
        peft_model.base_model.set_adapter([*names, TRAIN_ADAPTER])
    for pname, param in peft_model.named_parameters():  # only the new adapter learns
        param.requires_grad = f".{TRAIN_ADAPTER}." in pname or pname.endswith(f".{TRAIN_ADAPTER}")
    if not any(p.requires_grad for p in peft_model.parameters()):
        raise UserError("the LoRA target modules matched no layer of this model; check --lora-target-modules")
    if cfg.training.gradient_checkpointing and not quantized:
        peft_model.enable_input_require_grads()
    if cfg.model.continue_parent:
        chain = chain[:-1]
    chain.append(cfg.name)
    return TrainModel(model=peft_model, tokenizer=tok, base=base_id(base), base_dir=Path(base_dir), fingerprint=fp,
                      device=str(device), quantized=quantized, chain=chain, parent=parent, parents=names)


def load_merged(cfg, task: str = "causal", device: str | None = None, store: ProfileStore | None = None,
                add_lora: bool = True) -> TrainModel:
    """load_for_training with the parent chain merged into the base (the preference stages)."""
    return load_for_training(cfg, device=device, task=task, store=store, merge_parents=True, add_lora=add_lora)


def template_of(cfg, tm: TrainModel) -> str:
    """The chat template the new profile will be used with: --template, else the parent's, else the tokenizer's."""
    from trainer.data.encoding import resolve_template

    override = cfg.data.template or (tm.parent.chat_template if tm.parent else "")
    return resolve_template(tm.tokenizer, override)


def _unwrap(model):
    return getattr(model, "module", model)  # DDP wraps the PeftModel


def trainable_state(tm: TrainModel) -> dict:
    """The trainable adapter's tensors under standard PEFT keys (adapter name stripped), on CPU."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(_unwrap(tm.model), adapter_name=tm.adapter)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_adapter(tm: TrainModel, out_dir: Path) -> Path:
    """Write the trainable adapter as a standalone PEFT dir the engine (and peft) can load."""
    import copy

    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = _unwrap(tm.model)
    config = copy.deepcopy(model.peft_config[tm.adapter])
    config.inference_mode = True
    config.base_model_name_or_path = tm.base
    config.save_pretrained(str(out_dir))
    save_file(trainable_state(tm), str(out_dir / WEIGHTS), metadata={"format": "pt"})
    return out_dir


def load_adapter_weights(tm: TrainModel, adapter_dir: Path) -> None:
    """Load weights saved by save_adapter back into the trainable adapter (resume / best)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(Path(adapter_dir) / WEIGHTS))
    result = set_peft_model_state_dict(_unwrap(tm.model), state, adapter_name=tm.adapter)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise UserError(f"checkpoint '{adapter_dir}' does not fit this model ({len(unexpected)} unexpected tensors)")


def trainable_params(tm: TrainModel) -> list:
    return [p for p in tm.model.parameters() if p.requires_grad]


def make_optimizer(tm: TrainModel, training):
    """AdamW; paged 8-bit AdamW for QLoRA on CUDA (paged optimizers need CUDA, so CPU uses torch AdamW)."""
    import torch

    params = trainable_params(tm)
    optim = training.optim or ("paged_adamw_8bit" if tm.quantized and tm.device.startswith("cuda") else "adamw_torch")
    if optim != "adamw_torch" and tm.device.startswith("cuda"):
        import bitsandbytes as bnb

        cls = {"paged_adamw_8bit": bnb.optim.PagedAdamW8bit, "paged_adamw_32bit": bnb.optim.PagedAdamW32bit,
               "adamw_8bit": bnb.optim.AdamW8bit}[optim]
        return cls(params, lr=training.learning_rate, weight_decay=0.0)
    return torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=0.0)


def make_scheduler(optimizer, training, total_steps: int):
    from transformers import get_scheduler

    warmup = int(round(training.warmup_ratio * total_steps))
    return get_scheduler(training.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)

