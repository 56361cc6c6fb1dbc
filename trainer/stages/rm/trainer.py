"""The rm stage's batch, loss and eval for the shared TrainLoop (trainer.stages.loop).

The score is read at each conversation's last real token (trainer.reward_model.score_batch picks it
from the attention mask instead of relying on pad-token detection, which breaks when pad == eos).
Loss: the pairwise -log sigmoid(r_chosen - r_rejected); accuracy: how often chosen scores above rejected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.data.pairwise import conversation, encode_conversation
from trainer.reward_model import right_pad, score_batch


def pair_loss(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, device):
    """(loss, accuracy, mean margin) of a batch of (chosen ids, rejected ids)."""
    ids, mask = right_pad([c for c, _ in pairs] + [r for _, r in pairs], pad_id, device)
    scores = score_batch(model, ids, mask)
    chosen, rejected = scores[:len(pairs)], scores[len(pairs):]
    margin = chosen - rejected
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean().item(), margin.mean().item()


def encode_pairs(tm, examples, template: str, cutoff: int) -> list[tuple[list[int], list[int]]]:
    return [(encode_conversation(tm.tokenizer, conversation(ex, ex.chosen), template, cutoff),
             encode_conversation(tm.tokenizer, conversation(ex, ex.rejected), template, cutoff)) for ex in examples]


@torch.no_grad()
def evaluate(model, pairs, pad_id: int, device, batch_size: int = 8) -> dict:
    was = model.training
    model.eval()
    loss = acc = margin = 0.0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        lo, ac, ma = pair_loss(model, chunk, pad_id, device)
        loss, acc, margin = loss + float(lo) * len(chunk), acc + ac * len(chunk), margin + ma * len(chunk)
    model.train(was)
    n = max(len(pairs), 1)
    return {"loss": loss / n, "accuracy": acc / n, "margin": margin / n}


def pairs_batch(device, pad_id):
    """TrainLoop make_batch: a batch of (chosen ids, rejected ids) pairs."""
    def make(pairs):
        return {"pairs": pairs, "num_tokens": sum(len(c) + len(r) for c, r in pairs),
                "device": device, "pad_id": pad_id}
    return make


def pairs_loss(model, batch):
    """TrainLoop loss: the pairwise loss summed over the batch, with accuracy and margin sums."""
    pairs = batch["pairs"]
    ids, mask = right_pad([c for c, _ in pairs] + [r for _, r in pairs], batch["pad_id"], batch["device"])
    scores = score_batch(model, ids, mask)
    margin = scores[:len(pairs)] - scores[len(pairs):]
    return -F.logsigmoid(margin).sum(), {"accuracy": float((margin > 0).float().sum()),
                                         "margin": float(margin.detach().sum())}


def pairs_count(batch) -> int:
    return len(batch["pairs"])
