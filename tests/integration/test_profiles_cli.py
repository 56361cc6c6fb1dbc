"""`medchat profiles list|show|import|remove|rename|export` through the real entry point."""

from __future__ import annotations

import json

import pytest

from medchat.app.cli import main
from medchat.core.profiles import ProfileStore
from test_engine_support import install, one_torch_thread  # noqa: F401


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, needle):
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medchat: ") and needle in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def stacked(capsys, tiny_model_dir, lora_a, lora_b):
    """'a' imported, and 'ab' stacked on it (as training a child of 'a' would install it)."""
    assert cli(capsys, "profiles", "import", lora_a, "--name", "a", "--base", tiny_model_dir)[0] == 0
    install(ProfileStore(), "ab", lora_b, tiny_model_dir, chain=["a"])


def test_list_json_starts_with_base(capsys):
    rc, out, _ = cli(capsys, "profiles", "list", "--json")
    assert rc == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["base"] and rows[0]["chain"] == []


def test_import_then_list_and_show(capsys, tiny_model_dir, lora_a):
    rc, out, _ = cli(capsys, "profiles", "import", lora_a, "--name", "covid-sft", "--base", tiny_model_dir,
                     "--description", "covid answers")
    assert rc == 0 and "imported 'covid-sft'" in out and "/use covid-sft" in out
    rows = json.loads(cli(capsys, "profiles", "list", "--json")[1])
    assert [r["name"] for r in rows] == ["base", "covid-sft"]
    row = rows[1]
    assert row["stage"] == "import" and row["chain"] == ["covid-sft"] and row["description"] == "covid answers"
    assert row["base"] == str(tiny_model_dir.resolve())
    rc, out, _ = cli(capsys, "profiles", "list")
    assert rc == 0 and "covid-sft" in out and "base" in out
    shown = json.loads(cli(capsys, "profiles", "show", "covid-sft", "--json")[1])
    assert shown["name"] == "covid-sft" and {"generation", "kb", "system_prompt", "datasets"} <= set(shown)
    rc, out, _ = cli(capsys, "profiles", "show", "covid-sft")
    assert rc == 0 and 'name = "covid-sft"' in out and "base_fingerprint" in out
    rc, out, _ = cli(capsys, "profiles", "show", "base")
    assert rc == 0 and 'name = "base"' in out


@pytest.mark.parametrize("args, needle", [
    (["show", "nope"], "unknown profile 'nope'"),
    (["remove", "nope"], "unknown profile 'nope'"),
    (["rename", "nope", "x"], "unknown profile 'nope'"),
    (["show", "../etc"], "invalid profile name"),
])
def test_errors_are_one_line_without_traceback(capsys, args, needle):
    rc, _, err = cli(capsys, "profiles", *args)
    assert_one_line_error(rc, err, needle)


def test_import_refusals_via_cli(capsys, tmp_path, tiny_model_dir, lora_a):
    rc, _, err = cli(capsys, "profiles", "import", tmp_path / "missing", "--name", "x", "--base", tiny_model_dir)
    assert_one_line_error(rc, err, "is not a directory")
    rc, _, err = cli(capsys, "profiles", "import", lora_a, "--name", "Bad/Name", "--base", tiny_model_dir)
    assert_one_line_error(rc, err, "invalid profile name")
    assert [r["name"] for r in json.loads(cli(capsys, "profiles", "list", "--json")[1])] == ["base"]


def test_remove_refuses_a_stacked_parent_unless_forced(capsys, stacked):
    rc, _, err = cli(capsys, "profiles", "remove", "a")
    assert_one_line_error(rc, err, "'a' is stacked on by ab")
    assert ProfileStore().exists("a")
    rc, out, _ = cli(capsys, "profiles", "remove", "a", "--force")
    assert rc == 0 and "removed 'a'" in out and not ProfileStore().exists("a")
    rc, _, err = cli(capsys, "profiles", "remove", "base")
    assert_one_line_error(rc, err, "cannot be removed")


def test_rename_updates_the_children(capsys, stacked):
    rc, out, _ = cli(capsys, "profiles", "rename", "a", "a-v2")
    assert rc == 0 and "renamed 'a' to 'a-v2'" in out
    rows = {r["name"]: r for r in json.loads(cli(capsys, "profiles", "list", "--json")[1])}
    assert set(rows) == {"base", "a-v2", "ab"} and rows["ab"]["chain"] == ["a-v2", "ab"]
    rc, _, err = cli(capsys, "profiles", "rename", "ab", "Base")
    assert_one_line_error(rc, err, "invalid profile name")


def test_export_adapter_and_merged(capsys, stacked, tmp_path, tiny_model_dir):
    rc, out, _ = cli(capsys, "profiles", "export", "ab", tmp_path / "adapter")
    assert rc == 0 and "(PEFT adapter)" in out
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    rc, out, _ = cli(capsys, "profiles", "export", "ab", tmp_path / "merged", "--merged")
    assert rc == 0 and "(merged full model)" in out
    assert (tmp_path / "merged" / "config.json").exists() and list((tmp_path / "merged").glob("*.safetensors"))
    rc, _, err = cli(capsys, "profiles", "export", "ab", tmp_path / "merged")
    assert_one_line_error(rc, err, "exists and is not empty")
    rc, _, err = cli(capsys, "profiles", "export", "ab", tmp_path / "m16", "--merged", "--dtype", "float16")
    assert_one_line_error(rc, err, "--dtype applies to an adapter export")
    assert not (tmp_path / "m16").exists()
    rc, _, err = cli(capsys, "profiles", "export", "ab", tmp_path / "a3", "--dtype", "int3")
    assert_one_line_error(rc, err, "unknown --dtype 'int3'")
    assert not (tmp_path / "a3").exists()
    rc, out, _ = cli(capsys, "profiles", "export", "ab", tmp_path / "a16", "--dtype", "float16")
    assert rc == 0 and (tmp_path / "a16" / "adapter_model.safetensors").exists()
    rc, out, _ = cli(capsys, "profiles", "import", tmp_path / "adapter", "--name", "flat", "--base", tiny_model_dir)
    assert rc == 0 and ProfileStore().get("flat").chain == ["flat"]
