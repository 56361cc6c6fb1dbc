"""Dataset registry compatible with LLaMA-Factory's `dataset_info.json`.

An entry: {"file_name": ..., "formatting": "alpaca"|"sharegpt", "ranking": bool,
"columns": {prompt, query, response, history, system, messages, chosen, rejected, tools},
"tags": {role_tag, content_tag, user_tag, assistant_tag, system_tag, observation_tag, function_tag},
"num_samples": N}. `file_name` may be a file or a folder of files. Hub entries (hf_hub_url,
ms_hub_url, script_url) are refused: medchat trains offline.

A spec that is not a registry name but an existing path is read directly with its format
auto-detected (formatting "auto").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medchat.core.errors import UserError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SUPPORTED_EXT = (".json", ".jsonl", ".csv", ".parquet", ".txt")

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": None,
                  "system": None, "chosen": None, "rejected": None}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": None, "tools": None, "chosen": None,
                    "rejected": None}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


@dataclass
class DatasetSpec:
    name: str
    path: Path  # a file or a folder
    formatting: str = "auto"  # alpaca | sharegpt | auto
    ranking: bool = False
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    num_samples: int = 0

    def files(self) -> list[Path]:
        if self.path.is_dir():
            found = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in SUPPORTED_EXT and p.is_file())
            if not found:
                raise UserError(f"dataset '{self.name}': folder {self.path} holds no {', '.join(SUPPORTED_EXT)} files")
            return found
        if not self.path.exists():
            raise UserError(f"dataset '{self.name}': file {self.path} does not exist")
        return [self.path]

    def column(self, key: str):
        defaults = SHAREGPT_COLUMNS if self.formatting == "sharegpt" else ALPACA_COLUMNS
        return self.columns.get(key, defaults.get(key))

    def tag(self, key: str):
        return self.tags.get(key, SHAREGPT_TAGS.get(key))


def default_dataset_dir() -> Path:
    return SAMPLES_DIR


def load_registry(dataset_dir: Path | str | None = None) -> dict:
    """The parsed dataset_info.json of `dataset_dir` ({} when there is none)."""
    root = Path(dataset_dir).expanduser() if dataset_dir else SAMPLES_DIR
    info = root / "dataset_info.json"
    if not info.exists():
        return {}
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {info}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{info} must map dataset names to entries")
    return data


def spec_from_entry(name: str, entry: dict, root: Path) -> DatasetSpec:
    if not isinstance(entry, dict):
        raise UserError(f"dataset '{name}' in {root / 'dataset_info.json'}: entry must be an object")
    for remote in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"):
        if remote in entry and "file_name" not in entry:
            raise UserError(f"dataset '{name}' is fetched from the internet ({remote}); medchat trains offline: "
                            "download the file and point 'file_name' at it")
    if "file_name" not in entry:
        raise UserError(f"dataset '{name}' in {root / 'dataset_info.json'} has no 'file_name'")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise UserError(f"dataset '{name}': unsupported formatting '{formatting}' (use alpaca or sharegpt)")
    return DatasetSpec(name=name, path=(root / entry["file_name"]).expanduser(), formatting=formatting,
                       ranking=bool(entry.get("ranking", False)), columns=dict(entry.get("columns") or {}),
                       tags=dict(entry.get("tags") or {}), num_samples=int(entry.get("num_samples") or 0))


def resolve(spec: str, dataset_dir: Path | str | None = None) -> DatasetSpec:
    """A registry name in `dataset_dir` (default: the shipped samples) or a direct file/folder path."""
    spec = str(spec).strip()
    root = Path(dataset_dir).expanduser() if dataset_dir else SAMPLES_DIR
    registry = load_registry(root)
    if spec in registry:
        return spec_from_entry(spec, registry[spec], root)
    for candidate in (Path(spec).expanduser(), root / spec):
        if candidate.exists():
            return DatasetSpec(name=candidate.stem if candidate.is_file() else candidate.name,
                               path=candidate.resolve())
    known = ", ".join(sorted(registry)) or "none"
    raise UserError(f"unknown dataset '{spec}': not in {root / 'dataset_info.json'} (known: {known}) "
                    "and not an existing file; pass a path or --dataset-dir")
