"""Packing short samples into one row without attention across sample boundaries, and collation.

A packed row holds several samples back to back. The collator gives each sample its own
position_ids (restarting at 0) and a 4D additive attention mask that is causal *within* a sample and
blocks every other sample (block-diagonal), so a packed row computes exactly what the samples would
compute alone. We build the mask ourselves because transformers' sdpa/eager paths on CPU do not
derive it from position_ids. The first label of every sample is ignored: in a packed row it would
otherwise be predicted from the previous sample's last token.
Rows with a single sample use the ordinary 2D padding mask.
"""

from __future__ import annotations

from trainer.data.encoding import IGNORE, Encoded


def pack(samples: list[Encoded], capacity: int) -> list[list[int]]:
    """Group sample indices into rows of at most `capacity` tokens (first-fit decreasing; deterministic)."""
    order = sorted(range(len(samples)), key=lambda i: (-len(samples[i]), i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(samples[i])
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(capacity - n)
    return rows


def singletons(samples: list[Encoded]) -> list[list[int]]:
    return [[i] for i in range(len(samples))]


def collate(samples: list[Encoded], rows: list[list[int]], pad_id: int, pad_to_multiple: int = 1) -> dict:
    """Batch tensors: input_ids, labels, position_ids, attention_mask (2D, or 4D bool 'allowed' when
    any row holds several samples; turn it additive with `additive_mask`), num_tokens (non-pad)."""
    import torch

    width = max(sum(len(samples[i]) for i in row) for row in rows)
    width = -(-width // pad_to_multiple) * pad_to_multiple
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)  # -1 = padding
    for r, row in enumerate(rows):
        at = 0
        for k, i in enumerate(row):
            s = samples[i]
            L = len(s)
            ids[r, at: at + L] = torch.tensor(s.input_ids)
            lab = torch.tensor(s.labels)
            lab[0] = IGNORE
            labels[r, at: at + L] = lab
            pos[r, at: at + L] = torch.arange(L)
            seg[r, at: at + L] = k
            at += L
        pos[r, at:] = torch.arange(width - at)
    batch = {"input_ids": ids, "labels": labels, "position_ids": pos, "num_tokens": int((seg >= 0).sum())}
    if all(len(row) == 1 for row in rows):
        batch["attention_mask"] = (seg >= 0).long()
    else:
        causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
        same = seg[:, :, None] == seg[:, None, :]  # padding (-1) attends to padding: no empty rows
        batch["attention_mask"] = (same & causal)[:, None]
    return batch


def additive_mask(batch: dict, dtype) -> dict:
    """Convert a 4D boolean 'allowed' mask to the additive float mask the model expects (in place)."""
    import torch

    mask = batch.get("attention_mask")
    if mask is not None and mask.dim() == 4 and mask.dtype == torch.bool:
        batch["attention_mask"] = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(dtype).min)
    return batch
