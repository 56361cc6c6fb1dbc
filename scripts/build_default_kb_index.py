"""Regenerate the default KB's shipped index (kb/data/default-index/) from kb/data/default.

    python scripts/build_default_kb_index.py

Run it after changing kb/data/default (or the default embedder) and commit the result; otherwise
users' first question builds the index from the documents (a minute or more). Takes about as long.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medchat.core import quiet  # noqa: E402

quiet.configure()

from kb import shipped  # noqa: E402
from kb.knowledge import DEFAULT_DATA, DEFAULT_KB, KnowledgeBase  # noqa: E402


def main() -> int:
    start = time.monotonic()
    kb = KnowledgeBase._create(DEFAULT_KB, None, None, allow_empty=False,
                               progress=lambda done, total: print(f"\rembedding {done}/{total}", end="",
                                                                  file=sys.stderr, flush=True))
    kb.manifest["bundled_from"] = "kb/data/default"
    shipped.export(kb, DEFAULT_DATA)
    print(f"\nwrote {shipped.SHIPPED_DIR} ({len(kb.chunks)} chunks, {shipped.size_bytes() / 1e6:.2f} MB) "
          f"in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
