"""Packed rows must not attend across samples: logits equal each sample run alone."""

import torch

from trainer.data.encoding import Encoded
from trainer.data.packing import IGNORE, additive_mask, collate, pack


def _samples(n_tokens, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [Encoded(torch.randint(3, 300, (n,), generator=g).tolist(),
                    [IGNORE] * (n // 2) + torch.randint(3, 300, (n - n // 2,), generator=g).tolist())
            for n in n_tokens]


def test_pack_fits_capacity_and_keeps_every_sample():
    samples = _samples([30, 5, 12, 20, 9, 31, 2])
    rows = pack(samples, capacity=32)
    assert sorted(i for r in rows for i in r) == list(range(7))
    assert all(sum(len(samples[i]) for i in r) <= 32 for r in rows)
    assert len(rows) < 7


def test_packed_logits_equal_unpacked(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    samples = _samples([7, 11, 5, 9, 4])
    rows = [[0, 1, 2], [3, 4]]  # two packed rows (the second padded)
    batch = additive_mask(collate(samples, rows, pad_id=0), torch.float32)
    assert batch["attention_mask"].dim() == 4
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                alone = model(input_ids=torch.tensor([samples[i].input_ids])).logits[0]
                n = len(samples[i])
                torch.testing.assert_close(packed[r, at: at + n], alone, atol=1e-4, rtol=1e-4)
                at += n
        # control: as one plain causal sequence the second sample sees the first, so logits differ
        leaky = model(input_ids=batch["input_ids"]).logits
        assert (leaky[0, 7:18] - packed[0, 7:18]).abs().max() > 1e-3
    # labels: the first token of every packed sample is never a target (no cross-sample prediction)
    assert batch["labels"][0, 7] == IGNORE and batch["labels"][0, 18] == IGNORE
    assert batch["num_tokens"] == sum(len(s) for s in samples)


def test_unpacked_batches_use_a_plain_padding_mask():
    samples = _samples([6, 3])
    batch = collate(samples, [[0], [1]], pad_id=0)
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
