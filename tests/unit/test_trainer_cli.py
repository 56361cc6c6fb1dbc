"""trainer.cli: `train recipe` routes to trainer.recipes.run with typed overrides; argument errors."""

import types

from medchat.app.cli import main


def test_train_recipe_routes_to_recipes_run(monkeypatch, capsys):
    import sys

    calls = []
    fake = types.ModuleType("trainer.recipes")
    fake.run = lambda name, overrides, **kw: calls.append((name, overrides, kw)) or [types.SimpleNamespace(name="covid-sft")]
    monkeypatch.setitem(sys.modules, "trainer.recipes", fake)
    import trainer

    monkeypatch.setattr(trainer, "recipes", fake, raising=False)
    assert main(["train", "recipe", "covid", "--learning-rate", "1e-4", "--ppo-kl-coef", "0.1",
                 "--set", "lora.r=16"]) == 0
    assert calls == [("covid", {"training.learning_rate": 1e-4, "ppo.kl_coef": 0.1, "lora.r": 16},
                      {"quiet": False, "remote_code_flag": False})]
    assert "covid-sft" in capsys.readouterr().out
    assert main(["train", "recipe", "covid", "--quiet"]) == 0
    assert calls[-1][2]["quiet"] is True  # no progress bars in any stage


def test_train_argument_errors(capsys):
    assert main(["train", "recipe"]) == 2
    assert "usage: medchat train recipe" in capsys.readouterr().err
    assert main(["train", "a.yaml", "b.yaml"]) == 2
    assert "at most one recipe" in capsys.readouterr().err
    assert main(["train", "missing.yaml", "--name", "x"]) == 1  # runtime: no such file
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--name", "x", "--dataset", "covid_sft", "--lora-r", "many"]) == 2
    assert "expects int" in capsys.readouterr().err


def test_trust_remote_code_from_a_recipe_or_set_needs_the_flag(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\ntrust_remote_code: true\n", encoding="utf-8")
    for argv in (["train", str(recipe)], ["train", "--name", "x", "--set", "model.trust_remote_code=true"],
                 ["train", str(recipe), "--no-trust-remote-code", "--set", "trust_remote_code=true"]):
        assert main(argv) != 0
        assert "pass --trust-remote-code on the command line" in capsys.readouterr().err
    # with the flag, the gate opens: the run stops later, at the missing dataset
    assert main(["train", str(recipe), "--trust-remote-code"]) != 0
    assert "no dataset given" in capsys.readouterr().err


def test_multi_stage_recipe_asking_for_remote_code_needs_the_flag(tmp_path, capsys):
    recipe = tmp_path / "multi.yaml"
    recipe.write_text("defaults:\n  base: smollm2-135m\n  trust_remote_code: true\n"
                      "stages:\n  - stage: sft\n    name: m-sft\n    dataset: covid_sft\n", encoding="utf-8")
    assert main(["train", "recipe", str(recipe)]) != 0
    assert "pass --trust-remote-code" in capsys.readouterr().err
