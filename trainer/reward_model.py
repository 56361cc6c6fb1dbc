"""Scoring with a reward profile (trained by --stage rm); used by the ppo stage and `medchat eval --reward`.

    scorer = load_reward_model("covid-rm")      # scorer.score([messages, ...]) -> tensor of scores
    scores = score_batch(model, input_ids, attention_mask)

The score is read at each conversation's last real token (we pick it from the attention mask
instead of relying on pad-token detection, which breaks when pad == eos).
"""

from __future__ import annotations

import torch

from medchat.core.errors import UserError
from medchat.core.profiles import Profile, ProfileStore, require_reward
from trainer.data.pairwise import encode_conversation


def _parts(model):
    """(backbone, score head) of a seq-cls model, wrapped by peft or not."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(core, core.base_model_prefix), core.score


def score_batch(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar score per right-padded row, read at the row's last real token."""
    backbone, head = _parts(model)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    last = attention_mask.long().sum(1) - 1
    picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return head(picked).squeeze(-1).float()


def right_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


class RewardScorer:
    """A loaded reward profile: `score(list of message lists) -> tensor` (also callable as a reward_fn)."""

    def __init__(self, model, tokenizer, template: str, profile: Profile, max_len: int = 1024):
        self.model, self.tokenizer, self.template, self.profile, self.max_len = model, tokenizer, template, profile, max_len
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @torch.no_grad()
    def score(self, conversations: list[list[dict]], batch_size: int = 8) -> torch.Tensor:
        out = []
        for i in range(0, len(conversations), batch_size):
            rows = [encode_conversation(self.tokenizer, c, self.template, self.max_len)
                    for c in conversations[i:i + batch_size]]
            ids, mask = right_pad(rows, self.pad_id, self.device)
            out.append(score_batch(self.model, ids, mask).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    __call__ = score


def require_reward_profile(name: str, store: ProfileStore | None = None, flag: str = "--reward") -> Profile:
    """The named profile, which must be a reward one (the kind rule is medchat.core.profiles.require_reward)."""
    if not name:
        raise UserError(f"{flag} NAME is required: a reward profile to score replies "
                        "(train one with `medchat train --stage rm --from covid-sft --dataset covid_pairs --name covid-rm`)")
    return require_reward((store or ProfileStore()).get(name), flag)


def load_reward_model(profile_name: str, device: str | None = None, store: ProfileStore | None = None,
                      dtype=None) -> RewardScorer:
    """Load a reward profile (base + merged parents + its adapter with the score head) for scoring."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from medchat.core.models import fingerprint, pick_device, resolve_base
    from trainer.data.encoding import resolve_template
    from trainer.modeling import load_tokenizer
    from trainer.modeling import merge_chain

    store = store or ProfileStore()
    profile = require_reward_profile(profile_name, store)
    base_dir = resolve_base(profile.base or None)
    if profile.base_fingerprint and fingerprint(base_dir) != profile.base_fingerprint:
        raise UserError(f"reward profile '{profile.name}' was made for other weights than '{profile.base}' "
                        "now holds; retrain it")
    device = pick_device(device)
    tok = load_tokenizer(base_dir)
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the base has no `score` weights; the adapter brings them
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1,
                                                                   dtype=dtype or torch.float32)
    finally:
        hf_logging.set_verbosity(level)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    links = store.chain_dirs(profile)
    model = merge_chain(model, links[:-1])
    model = PeftModel.from_pretrained(model, str(links[-1][1]))
    model.to(device).eval()
    max_len = int(profile.metrics.get("cutoff_len", 1024))  # score as in training: same truncation
    return RewardScorer(model, tok, resolve_template(tok, profile.chat_template), profile, max_len)
