"""Training charts: the loss curve of a run (train and eval loss against the step)."""

from __future__ import annotations

from pathlib import Path

from medchat.core import charts


def loss_chart(records: list[dict], path: Path, title: str = "") -> Path | None:
    """loss.png from trainer_log records; None when no record has a loss yet."""
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    if not train and not evals:
        return None
    fig = charts.figure(7, 4, dpi=100)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return charts.save(fig, path)
