"""`medchat data check`: parse a dataset, report bad rows and token counts, and preview the loss mask.

Trained tokens (those with a label) are shown in bold green, the rest dimmed; without colour (not
a terminal, or NO_COLOR) trained spans are wrapped in ⟦ ⟧ instead.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from trainer.data import RANKING_STAGES, load_dataset_rows
from trainer.data.encoding import IGNORE, encode_chat, encode_text, resolve_template, truncate

OPEN, CLOSE = "⟦", "⟧"


def mask_text(tokenizer, ids: list[int], labels: list[int], color: bool) -> Text:
    """The decoded sample with trained spans styled (or bracketed when color is False)."""
    out = Text()
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or (labels[i] != IGNORE) != (labels[start] != IGNORE):
            piece = tokenizer.decode(ids[start:i], skip_special_tokens=False)
            trained = labels[start] != IGNORE
            if color:
                out.append(piece, style="bold green" if trained else "dim")
            else:
                out.append(f"{OPEN}{piece}{CLOSE}" if trained else piece)
            start = i
    return out


def check(dataset: str, dataset_dir=None, rows: int = 3, base: str | None = None, stage: str = "sft",
          cutoff_len: int = 1024, template: str = "", train_on_prompt: bool = False, last_turn_only: bool = False,
          console: Console | None = None) -> int:
    from medchat.core.models import resolve_base
    from trainer.modeling import load_tokenizer

    console = console or Console()
    color = console.color_system is not None and not console.no_color
    data = load_dataset_rows(dataset, dataset_dir, stage, skip_bad=True)
    info = data.info
    console.print(f"[bold]{info['name']}[/]: {info['rows']} usable rows ({info['format']}) from "
                  f"{', '.join(info['files'])}; sha256 {info['sha256'][:16]}")
    if data.skipped:
        console.print(f"[red]{len(data.skipped)} bad rows[/] (training stops on these unless --skip-bad):")
        for line in data.skipped[:10]:
            console.print(f"  {line}", markup=False)
    else:
        console.print("bad rows: none")
    tok = load_tokenizer(resolve_base(base))
    tmpl = resolve_template(tok, template)
    lengths, trained_total, truncated, dropped, shown = [], 0, 0, 0, 0
    for ex in data:
        if stage == "pt":
            pieces = encode_text(tok, ex.text, cutoff_len)
        elif stage == "sft":
            enc = encode_chat(tok, tmpl, ex.chat(), train_on_prompt, last_turn_only)
            truncated += len(enc) > cutoff_len
            enc = truncate(enc, cutoff_len)
            dropped += enc is None
            pieces = [enc] if enc is not None else []
        else:  # ranking / prompt-only data: show the prompt as the model sees it
            ids = tok.apply_chat_template(ex.chat(), chat_template=tmpl, tokenize=True, add_generation_prompt=True)
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            from trainer.data.encoding import Encoded

            pieces = [Encoded(ids, [IGNORE] * len(ids))]
        for enc in pieces:
            lengths.append(len(enc))
            trained_total += enc.trained
            if shown < rows:
                shown += 1
                pct = 100 * enc.trained / max(len(enc), 1)
                console.rule(f"{ex.source.rsplit('/', 1)[-1]} row {ex.row}: {len(enc)} tokens, "
                             f"{enc.trained} trained ({pct:.0f}%)")
                console.print(mask_text(tok, enc.input_ids, enc.labels, color))
                if stage in RANKING_STAGES:
                    console.print(Text(f"chosen: {ex.chosen}\nrejected: {ex.rejected}"))
    if lengths:
        console.rule()
        console.print(f"{len(lengths)} samples: tokens min {min(lengths)} / mean {sum(lengths) / len(lengths):.0f} "
                      f"/ max {max(lengths)}; {trained_total} of {sum(lengths)} tokens trained; "
                      f"{truncated} over --cutoff-len {cutoff_len} (kept their head), {dropped} dropped")
    legend = "trained tokens in [bold green]green[/], others dimmed" if color else f"trained tokens inside {OPEN} {CLOSE}"
    console.print(f"legend: {legend}")
    return 1 if data.skipped else 0
