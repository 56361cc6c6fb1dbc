"""SFT training throughput: packed rows vs a padded baseline on the shipped sample data.

    result = run(steps=5, base=None)   # base None = the embedded default model
    -> {"base", "device", "steps", "padded": {...}, "packed": {...}, "speedup"}
       each mode: tokens_per_s (real, non-pad tokens), pad_fraction, tokens, seconds, loss

Both modes train the same fresh LoRA (default config) with the same optimizer; one warm-up step is
not timed. Padded: `batch_size` samples per step, padded to the longest. Packed: one row per step
holding up to `cutoff_len` tokens of whole samples (block-diagonal attention, see trainer.data.packing).
"""

from __future__ import annotations

import time


def _measure(tm, samples, batches, steps: int, pad_id: int) -> dict:
    import torch

    from trainer.data.packing import additive_mask, collate
    from trainer.modeling import trainable_params
    from trainer.stages.loop import causal_loss, count_targets

    opt = torch.optim.AdamW(trainable_params(tm), lr=1e-4)
    real = padded = 0
    seconds = 0.0
    loss_val = float("nan")
    with torch.enable_grad():
        for i in range(steps + 1):
            rows = batches[i % len(batches)]
            batch = additive_mask(collate(samples, rows, pad_id), torch.float32)
            batch = {k: (v.to(tm.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            t0 = time.perf_counter()
            loss = causal_loss(tm.model, batch) / max(count_targets(batch), 1)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if tm.device.startswith("cuda"):
                torch.cuda.synchronize()
            if i == 0:
                continue  # warm-up
            seconds += time.perf_counter() - t0
            real += batch["num_tokens"]
            padded += batch["input_ids"].numel()
            loss_val = float(loss.detach())
    return {"tokens_per_s": round(real / max(seconds, 1e-9), 1), "pad_fraction": round(1 - real / max(padded, 1), 3),
            "tokens": real, "seconds": round(seconds, 2), "loss": round(loss_val, 4)}


def run(steps: int = 5, base: str | None = None, dataset: str = "covid_sft", device: str | None = None) -> dict:
    import torch

    from trainer.config import load_config
    from trainer.data import load_dataset_rows
    from trainer.data.encoding import encode_examples
    from trainer.data.packing import pack
    from trainer.modeling import load_for_training

    cfg = load_config({"name": "bench", "model": {"base": base or "", "device": device or ""}})
    torch.manual_seed(cfg.training.seed)
    tm = load_for_training(cfg, device=device)
    examples = load_dataset_rows(dataset, None, "sft")
    samples, _ = encode_examples(tm.tokenizer, examples, "sft", cfg.data.cutoff_len)
    pad_id = tm.tokenizer.pad_token_id or 0
    bs = cfg.training.batch_size
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    padded_batches = [[[i] for i in order[k: k + bs]] for k in range(0, len(order), bs)]
    packed_batches = [[row] for row in pack(samples, cfg.data.cutoff_len)]
    result = {"base": tm.base, "device": tm.device, "steps": steps, "dataset": dataset,
              "padded": _measure(tm, samples, padded_batches, steps, pad_id),
              "packed": _measure(tm, samples, packed_batches, steps, pad_id)}
    result["speedup"] = round(result["packed"]["tokens_per_s"] / max(result["padded"]["tokens_per_s"], 1e-9), 2)
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5, sys.argv[2] if len(sys.argv) > 2 else None),
                     indent=1))
