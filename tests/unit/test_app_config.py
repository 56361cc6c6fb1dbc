"""AppConfig: defaults < config.toml < environment < flags, and `medchat config show|set|path`."""

from __future__ import annotations

import json
import tomllib

import pytest

from medchat.app.cli import main
from medchat.core.config import SETTINGS, AppConfig
from medchat.core.errors import UserError


@pytest.fixture
def home(medchat_home):
    medchat_home.mkdir(parents=True, exist_ok=True)
    return medchat_home


def test_every_field_has_one_setting_and_the_defaults_load(tmp_path):
    assert {s.field for s in SETTINGS} == set(AppConfig().to_dict())
    assert AppConfig.load(tmp_path / "missing.toml") == AppConfig()


def test_file_then_environment_then_flag(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[engine]\nthreads = 3\ndecode_mode = "float"\n[chat]\nkb = false\nprofile = "doc"\n')
    config, sources = AppConfig.resolve(path)
    assert (config.threads, config.decode_mode, config.kb, config.default_profile) == (3, "float", False, "doc")
    assert sources["threads"] == "file" and sources["region"] == "default"
    env = {"MEDCHAT_THREADS": "2", "MEDCHAT_KB": "yes"}
    config, sources = AppConfig.resolve(path, env=env)
    assert (config.threads, config.kb, sources["threads"]) == (2, True, "env MEDCHAT_THREADS")
    config, sources = AppConfig.resolve(path, env=env, flags={"threads": 1, "kb": None, "default_profile": "base"})
    assert (config.threads, config.kb, config.default_profile) == (1, True, "base")
    assert sources["threads"] == sources["default_profile"] == "flag" and sources["kb"] == "env MEDCHAT_KB"


def test_the_older_decode_mode_variable_is_still_read(tmp_path):
    config, sources = AppConfig.resolve(tmp_path / "none.toml", env={"MEDCHAT_QUANT": "weight"})
    assert config.decode_mode == "weight" and sources["decode_mode"] == "env MEDCHAT_QUANT"
    config = AppConfig.load(tmp_path / "none.toml", env={"MEDCHAT_QUANT": "weight", "MEDCHAT_DECODE_MODE": "float"})
    assert config.decode_mode == "float"


@pytest.mark.parametrize("text, match", [
    ("[engine]\nthreads = \"two\"\n", "engine.threads must be a whole number"),
    ("[engine]\nthreads = -1\n", "engine.threads: must be between"),
    ("[chat]\nkb = 1\n", "chat.kb must be true or false"),
    ("[chat\n", "not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_the_file(tmp_path, text, match):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=match) as exc:
        AppConfig.load(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_a_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(UserError, match="environment MEDCHAT_KEY_FACTS: chat.key_facts must be true or false"):
        AppConfig.load(tmp_path / "none.toml", env={"MEDCHAT_KEY_FACTS": "maybe"})


def test_path_set_show_round_trip(home, capsys):
    assert main(["config", "path"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(home / "config.toml")
    (home / "config.toml").write_text('# mine\ntop = 1\n[safety]\nregion = "UK"\n[other]\nkeep = "me"\n')
    assert main(["config", "set", "chat.key_facts", "off"]) == 0
    assert main(["config", "set", "engine.threads", "2"]) == 0
    assert main(["config", "set", "engine.decode_mode", "weight"]) == 0
    assert main(["config", "set", "safety.region", "US"]) == 0
    capsys.readouterr()
    data = tomllib.loads((home / "config.toml").read_text())
    assert data == {"top": 1, "safety": {"region": "US"}, "other": {"keep": "me"},
                    "chat": {"key_facts": False}, "engine": {"threads": 2, "decode_mode": "int8w-fp32"}}
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]
    assert main(["config", "show", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["settings"]}
    assert rows["chat.key_facts"]["value"] is False and rows["chat.key_facts"]["source"] == "file"
    assert rows["engine.threads"]["value"] == 2 and rows["chat.kb"]["source"] == "default"
    assert main(["config", "show"]) == 0
    assert "engine.threads = 2  (file" in capsys.readouterr().out


def test_show_names_the_environment_as_the_source(home, monkeypatch, capsys):
    (home / "config.toml").write_text("[engine]\nthreads = 3\n")
    monkeypatch.setenv("MEDCHAT_THREADS", "4")
    assert main(["config", "show", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["settings"]}
    assert (rows["engine.threads"]["value"], rows["engine.threads"]["source"]) == (4, "env MEDCHAT_THREADS")


@pytest.mark.parametrize("argv, message", [
    (["chat.nope", "1"], "unknown setting 'chat.nope'"),
    (["engine.threads", "many"], "engine.threads must be a whole number"),
    (["engine.threads", "99999"], "engine.threads: must be between 0 and 1024"),
    (["chat.kb", "perhaps"], "chat.kb must be true or false"),
    (["engine.decode_mode", "int4"], "unknown decode mode 'int4'"),
    (["safety.region", "ZZ"], "unknown region 'ZZ'"),
])
def test_a_bad_key_or_value_is_one_line_and_a_failure(home, capsys, argv, message):
    (home / "config.toml").write_text("[chat]\nkb = true\n")
    assert main(["config", "set", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("medchat: ")
    assert (home / "config.toml").read_text() == "[chat]\nkb = true\n"  # untouched


def test_config_repairs_a_broken_file(home, capsys):
    (home / "config.toml").write_text("[chat\n")
    assert main(["config", "path"]) == 0
    assert main(["history", "list"]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_flags_win_over_the_file_for_chat_and_ask(home, monkeypatch):
    from medchat.app.cli import build_parser
    from medchat.app.cli.common import app_config, kb_name

    (home / "config.toml").write_text('[chat]\nkb = false\nprofile = "doctor"\n[engine]\nthreads = 3\n')
    for name in ("MEDCHAT_KB", "MEDCHAT_PROFILE", "MEDCHAT_THREADS"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["ask", "hi"])
    config = app_config(args)
    assert (config.default_profile, config.threads, kb_name(args, config)) == ("doctor", 3, None)
    args = build_parser().parse_args(["ask", "--kb", "mine", "-p", "base", "--threads", "1", "hi"])
    config = app_config(args)
    assert (config.default_profile, config.threads, kb_name(args, config)) == ("base", 1, "mine")
    (home / "config.toml").write_text("[chat]\nkb = true\n")
    args = build_parser().parse_args(["chat", "--no-kb"])
    assert kb_name(args, app_config(args)) is None
    args = build_parser().parse_args(["chat"])
    assert kb_name(args, app_config(args)) == "default"


def test_platform_folders_without_medchat_home(tmp_path, monkeypatch):
    """No MEDCHAT_HOME: config.toml in the config dir, converted models and run scratch in the cache dir,
    and what an older medchat kept in the data dir is moved there once."""
    import platformdirs

    from medchat.core import paths

    monkeypatch.delenv("MEDCHAT_HOME", raising=False)
    for kind in ("data", "config", "cache"):
        monkeypatch.setattr(platformdirs, f"user_{kind}_dir", lambda *a, kind=kind, **k: str(tmp_path / kind))
    (tmp_path / "data" / "models" / "m").mkdir(parents=True)
    (tmp_path / "data" / "runs" / "sft-1").mkdir(parents=True)
    (tmp_path / "data" / "config.toml").write_text("[chat]\nkb = false\n")
    assert paths.config_file() == tmp_path / "config" / "config.toml"
    assert AppConfig.load().kb is False and not (tmp_path / "data" / "config.toml").exists()
    assert paths.models_dir() == tmp_path / "cache" / "models" and (tmp_path / "cache" / "models" / "m").is_dir()
    assert paths.profiles_dir() == tmp_path / "data" / "profiles"
    # run scratch is regenerable too: the cache dir, an older data-dir runs/ moved there
    assert paths.runs_dir() == tmp_path / "cache" / "runs" and (tmp_path / "cache" / "runs" / "sft-1").is_dir()
    assert not (tmp_path / "data" / "runs").exists()


def test_history_retention_deletes_only_conversations_untouched_that_long(home):
    import sqlite3

    from medchat.app.cli.chat import expire_history
    from medchat.app.history.store import HistoryStore
    from medchat.core import paths

    with HistoryStore() as store:
        old, new = store.new_conversation("old"), store.new_conversation("new")
        with sqlite3.connect(paths.history_db()) as db:
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", ("2000-01-01T00:00:00+00:00", old))
        assert expire_history(store, 0) == 0  # 0 keeps everything
        assert expire_history(store, 30) == 1
        assert [c["id"] for c in store.conversations()] == [new]
