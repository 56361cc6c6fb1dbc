"""The training progress bar: loss, learning rate, tokens/s and ETA on stderr."""

from __future__ import annotations


class TrainProgress:
    """A rich progress bar with loss, learning rate, tokens/s and ETA (stderr; quiet=True hides it)."""

    def __init__(self, total: int, description: str = "training", quiet: bool = False, start: int = 0):
        self.total, self.description, self.quiet, self.start = total, description, quiet, start
        self._progress = None

    def __enter__(self):
        if self.quiet:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[tps]} tok/s"), TextColumn("{task.fields[eval]}"),
            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=self.total, completed=self.start,
                                             loss="-", lr="-", tps="-", eval="")
        return self

    def update(self, step: int, loss=None, lr=None, tokens_per_s=None, eval_loss=None) -> None:
        if self._progress is None:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if lr is not None:
            fields["lr"] = f"{lr:.2e}"
        if tokens_per_s is not None:
            fields["tps"] = f"{tokens_per_s:,.0f}"
        if eval_loss is not None:
            fields["eval"] = f"eval {eval_loss:.4f}"
        self._progress.update(self._task, completed=step, **fields)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False
