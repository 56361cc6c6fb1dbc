"""Training data: registry, loaders, formats, validation, tokenization, loss mask, packing.

Public API (used by every stage, the recipes and eval):

    rows = load_dataset_rows("covid_sft" | "/path/file.jsonl", dataset_dir=None, stage="sft",
                             skip_bad=False, max_samples=0)   # -> DatasetRows (a list of Example)
    rows.info      # {"name", "sha256", "rows", "files", "format"} for the profile manifest
    rows.skipped   # ["file row N: reason", ...] (only with skip_bad)
    train, infos, skipped = load_datasets(["a", "b"], dataset_dir, stage, skip_bad, max_samples)

stage decides the shape of each Example:
  pt          -> Example.text (text column; chat rows are flattened to their texts)
  sft         -> Example.messages ending with an assistant reply (+ Example.system)
  rm | dpo    -> Example.messages ending with a user turn + Example.chosen / Example.rejected
  ppo         -> Example.messages ending with a user turn (prompts; replies of chat data are dropped)
Bad rows raise UserError("<file> row N: <reason>; ...") unless skip_bad, which counts them instead.
"""

from __future__ import annotations

from pathlib import Path

from medchat.core.errors import UserError
from trainer.data.formats import BadRow, Example, chat_to_text, detect, from_alpaca, from_sharegpt, from_text
from trainer.data.loaders import read_rows, sha256_files
from trainer.data.registry import DatasetSpec, default_dataset_dir, load_registry, resolve
from trainer.stages import stages_with_data

__all__ = ["Example", "DatasetRows", "DatasetSpec", "load_dataset_rows", "load_datasets", "resolve",
           "load_registry", "default_dataset_dir"]

RANKING_STAGES = stages_with_data("pairs")  # rm, dpo


class DatasetRows(list):
    """A list of Example with `.info` (manifest record) and `.skipped` (bad rows skipped)."""

    info: dict
    skipped: list


def _convert(rec, spec: DatasetSpec, fmt: str, stage: str) -> Example:
    if not isinstance(rec, dict):
        raise BadRow(f"expected an object with named fields, got {type(rec).__name__}")
    if stage == "pt":
        column = spec.columns.get("prompt", "text") if spec.formatting != "sharegpt" else "text"
        if fmt == "text" or column in rec and not (fmt in ("alpaca", "chatdoctor") and spec.column("response") in rec):
            return from_text(rec, column if column in rec else "text")
    ranking = fmt in ("ranking", "sharegpt_ranking") or spec.ranking
    if fmt in ("sharegpt", "sharegpt_ranking"):
        ex = from_sharegpt(rec, spec, ranking)
    elif fmt in ("alpaca", "ranking", "chatdoctor"):
        ex = from_alpaca(rec, spec, ranking, chatdoctor=fmt == "chatdoctor")
    elif fmt == "text":
        raise BadRow(f"plain text has no conversation; use it with --stage pt (this is --stage {stage})")
    else:
        raise BadRow(f"unrecognised row layout (fields: {', '.join(sorted(rec)) or 'none'}); "
                     "use alpaca (instruction/input/output), sharegpt (conversations) or a dataset_info.json entry")
    if stage == "pt":
        return chat_to_text(ex)
    if stage in RANKING_STAGES and not ranking:
        raise BadRow(f"--stage {stage} needs ranking data (chosen/rejected replies)")
    if stage == "sft" and ranking:
        raise BadRow("ranking data (chosen/rejected) is for --stage rm or dpo; use an SFT dataset for sft")
    if stage == "ppo" and not ranking:
        ex.messages = ex.messages[:-1]  # keep the prompt, drop the reference reply
    return ex


def load_dataset_rows(spec: str | DatasetSpec, dataset_dir=None, stage: str = "sft", skip_bad: bool = False,
                      max_samples: int = 0) -> DatasetRows:
    ds = spec if isinstance(spec, DatasetSpec) else resolve(spec, dataset_dir)
    files = ds.files()
    out = DatasetRows()
    out.skipped = []
    formats = set()
    for path in files:
        rows = read_rows(path)
        fmt = ds.formatting
        if fmt == "auto":
            fmt, extra = detect([r for _, r in rows[:50]])
            file_spec = DatasetSpec(name=ds.name, path=path, formatting="sharegpt" if "sharegpt" in fmt else "alpaca",
                                    ranking=ds.ranking, columns={k: v for k, v in extra.get("columns", {}).items()},
                                    tags=extra.get("tags", {}))
        else:
            file_spec = ds
        formats.add(fmt)
        for row_no, rec in rows:
            try:
                ex = _convert(rec, file_spec, fmt, stage)
            except BadRow as exc:
                where = f"{path} row {row_no}"
                if not skip_bad:
                    raise UserError(f"{where}: {exc}; fix the row or pass --skip-bad to skip bad rows") from None
                out.skipped.append(f"{where}: {exc}")
                continue
            ex.source, ex.row = str(path), row_no
            out.append(ex)
            if max_samples and len(out) >= max_samples:
                break
        if max_samples and len(out) >= max_samples:
            break
    if ds.num_samples and len(out) > ds.num_samples:
        del out[ds.num_samples:]
    if not out:
        reason = f" ({len(out.skipped)} bad rows skipped)" if out.skipped else ""
        raise UserError(f"dataset '{ds.name}' ({ds.path}) has no usable rows for --stage {stage}{reason}")
    out.info = {"name": ds.name, "sha256": sha256_files(files), "rows": len(out),
                "files": [str(f) for f in files], "format": "+".join(sorted(formats))}
    return out


def load_datasets(specs: list[str], dataset_dir=None, stage: str = "sft", skip_bad: bool = False,
                  max_samples: int = 0) -> tuple[list[Example], list[dict], list[str]]:
    """Several datasets concatenated: (examples, manifest infos, skipped-row messages)."""
    if not specs:
        raise UserError("no dataset given; pass --dataset NAME_OR_PATH (e.g. --dataset covid_sft)")
    examples, infos, skipped = [], [], []
    for spec in specs:
        rows = load_dataset_rows(spec, dataset_dir, stage, skip_bad, max_samples)
        examples += rows
        infos.append(rows.info)
        skipped += rows.skipped
    return examples, infos, skipped


def dataset_dir_of(cfg) -> Path:
    return Path(cfg.data.dataset_dir).expanduser() if cfg.data.dataset_dir else default_dataset_dir()
