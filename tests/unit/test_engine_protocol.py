"""The engine contract imports without torch, the test fake follows it, and a stream's stats come as its
final event (the generator's return value)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.fake_engine import FakeEngine

from medchat.core.engine.protocol import Engine, GenerationStats, collect
from medchat.core.profiles import ProfileStore

ROOT = Path(__file__).resolve().parents[2]


def heavy_modules_after(code: str) -> str:
    """Which of torch, transformers and sentence-transformers a fresh interpreter holds after `code`."""
    code += "; import sys; print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_protocol_and_the_package_import_without_torch():
    assert heavy_modules_after("import medchat.core.engine.protocol; "
                               "from medchat.core.engine import Engine, GenerationStats") == "[]"


def test_building_the_cli_parser_imports_no_heavy_library():
    """Every command builds the whole parser first: a torch import there (1-2 s) taxed even `kb list`."""
    assert heavy_modules_after("from medchat.app.cli import build_parser; build_parser()") == "[]"


def test_old_location_re_exports_the_same_stats_class():
    import medchat.core.engine as pkg

    assert pkg.GenerationStats is GenerationStats
    assert "ChatEngine" in pkg.__all__


def test_the_fake_engine_follows_the_protocol_and_returns_stats_from_its_stream(medchat_home):
    engine = FakeEngine(ProfileStore(), reply=lambda p, q: "rest and fluids")
    assert isinstance(engine, Engine)
    assert not hasattr(engine, "last")
    text, stats = collect(engine.stream([{"role": "user", "content": "what now?"}]))
    assert isinstance(stats, GenerationStats)
    assert text == stats.text == "rest and fluids" and stats.stop_reason == "eos" and stats.completion_tokens == 3
    assert stats.tokens_per_s == 42.0


def test_collect_joins_chunks_and_returns_the_final_value():
    def stream():
        yield "a"
        yield "b"
        return GenerationStats(text="ab", stop_reason="length")

    assert collect(stream()) == ("ab", GenerationStats(text="ab", stop_reason="length"))
