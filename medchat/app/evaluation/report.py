"""Presenting an eval: a rich table for the terminal, report.md, and PNG charts (matplotlib, Agg).

Charts are drawn on `matplotlib.figure.Figure` with the Agg canvas, never pyplot, so no GUI backend
or global state is touched.
"""

from __future__ import annotations

from pathlib import Path

from medchat.core import charts

SCORE_COLUMNS = [("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("bleu4", "BLEU-4"),
                 ("bertscore_precision", "BERTScore P"), ("bertscore_recall", "BERTScore R"),
                 ("bertscore_f1", "BERTScore F1")]
LENGTH_COLUMNS = [("reply_tokens_mean", "len mean"), ("reply_tokens_median", "len median")]
CHART_SCORES = ["rouge1", "rouge2", "rougeL", "bleu4", "bertscore_f1"]


def columns(metrics: dict) -> list[tuple[str, str]]:
    cols = SCORE_COLUMNS + LENGTH_COLUMNS
    if metrics.get("reward"):
        cols = cols + [("reward_mean", "reward")]
    return cols


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key.startswith("reply_tokens"):
        return f"{value:.1f}"
    return f"{value:.4f}" if key != "reward_mean" else f"{value:.3f}"


def _rows(metrics: dict) -> list[list[str]]:
    cols = columns(metrics)
    rows = [[name] + [_fmt(k, m.get(k)) for k, _ in cols] for name, m in metrics["profiles"].items()]
    ref = metrics.get("reference", {})
    if ref:  # the references' own lengths, for scale
        rows.append(["(reference)"] + ["" if not k.startswith("reply_tokens") else _fmt(k, ref.get(k))
                                       for k, _ in cols])
    return rows


def settings_lines(metrics: dict) -> list[str]:
    ds, gen, bs = metrics["dataset"], metrics["generation"], metrics["bertscore"]
    lines = [
        f"dataset: {ds.get('name')} ({ds['samples']} samples; {', '.join(ds.get('files', [])) or '-'})",
        f"base: {metrics['base']['name']} (fingerprint {metrics['base']['fingerprint']})",
        f"generation: {gen['mode']}, batch size {gen['batch_size']}, max {gen['max_new_tokens']} new tokens, "
        + ("greedy" if gen["temperature"] <= 0 else f"temperature {gen['temperature']}, top-p {gen['top_p']}, "
           f"top-k {gen['top_k']}, seed {gen['seed']}")
        + f", repetition penalty {gen['repetition_penalty']}",
        f"ROUGE: F-measure, tokens: {metrics['rouge']['tokenizer']}",
        f"BLEU-4: corpus, sacrebleu tokenizer '{metrics['bleu']['tokenizer']}' ({metrics['bleu']['signature']})",
        f"BERTScore: encoder {bs['encoder']}, layer {bs['layer']} of {bs['num_layers']}, "
        f"{'idf-weighted (idf from the references)' if bs['idf'] else 'no idf'}, no baseline rescaling",
        "scores are fractions in [0, 1]; lengths are reply tokens of the base tokenizer",
    ]
    if metrics.get("reward"):
        lines.append(f"reward: mean score of profile '{metrics['reward']['profile']}'")
    return lines


def rich_table(metrics: dict):
    """Metrics as rows, profiles as columns: fits a normal terminal for a handful of profiles."""
    ds = metrics["dataset"]
    return profiles_table(f"medchat eval: {ds.get('name')} ({ds['samples']} samples)", metrics["profiles"],
                          columns(metrics), _fmt, reference=metrics.get("reference", {}))


def profiles_table(title: str, profiles: dict, metrics, fmt, reference: dict | None = None):
    """A rich table with a row per (key, label) in `metrics` and a column per profile (plus a dim
    reference column when `reference` is given); `fmt(key, value)` renders a cell."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric", style="bold")
    names = list(profiles)
    for name in names:
        table.add_column(name, justify="right")
    if reference is not None:
        table.add_column("(reference)", justify="right", style="dim")
    for key, label in metrics:
        cells = [fmt(key, profiles[n].get(key)) for n in names]
        if reference is not None:
            cells.append(fmt(key, reference[key]) if key in reference else "")
        table.add_row(label, *cells)
    return table


def markdown(metrics: dict, charts: list[str]) -> str:
    cols = ["profile"] + [label for _, label in columns(metrics)]
    lines = ["# medchat eval", ""] + [f"- {line}" for line in settings_lines(metrics)] + [""]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in _rows(metrics)]
    lines.append("")
    for chart in charts:
        lines += [f"![{Path(chart).stem}]({Path(chart).name})", ""]
    lines.append("Per-sample prompts, references and replies: `predictions.jsonl`.")
    return "\n".join(lines) + "\n"


def scores_chart(metrics: dict, path: Path, keys: list[str] | None = None, labels: dict | None = None,
                 title: str | None = None, ylabel: str = "score (0-1)") -> Path:
    """Grouped bars: one group per metric (default CHART_SCORES), one bar per profile; values in [0, 1]."""
    names = list(metrics["profiles"])
    keys = keys or CHART_SCORES
    labels = labels or dict(SCORE_COLUMNS)
    fig = charts.figure(max(6.0, 1.4 * len(keys) + 0.4 * len(names)), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [metrics["profiles"][name].get(k) or 0.0 for k in keys]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(keys))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(keys)), [labels[k] for k in keys])
    if len(keys) > 5:
        ax.tick_params(axis="x", labelsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Scores per profile: {metrics['dataset'].get('name')}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return charts.save(fig, path)


def lengths_chart(lengths: dict[str, list[int]], path: Path) -> Path:
    """Reply-length distribution per profile (and the references): histogram and box plot."""
    fig = charts.figure(11.0, 4.2)
    hist, box = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    top = max([max(v) for v in lengths.values() if v] + [1])
    bins = list(range(0, top + max(1, top // 20) + 1, max(1, top // 20)))
    for name, values in lengths.items():
        hist.hist(values, bins=bins, histtype="step", linewidth=1.5, label=name)
    hist.set_xlabel("reply length (tokens)")
    hist.set_ylabel("samples")
    hist.set_title("Reply length distribution")
    hist.legend(fontsize=8)
    box.boxplot(list(lengths.values()), tick_labels=list(lengths))
    box.set_ylabel("reply length (tokens)")
    box.set_title("Reply length per profile")
    fig.tight_layout()
    return charts.save(fig, path)
