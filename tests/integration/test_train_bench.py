"""trainer.bench: packed vs padded SFT throughput on the sample data (tiny model, one timed step)."""

from trainer import bench


def test_bench_reports_both_modes(tiny_model_dir):
    result = bench.run(steps=1, base=str(tiny_model_dir))
    for mode in ("padded", "packed"):
        r = result[mode]
        assert r["tokens"] > 0 and r["tokens_per_s"] > 0 and 0 <= r["pad_fraction"] < 1
    assert result["packed"]["pad_fraction"] <= result["padded"]["pad_fraction"] + 0.5
    assert result["speedup"] > 0 and result["base"] == str(tiny_model_dir)
