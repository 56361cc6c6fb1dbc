"""trainer.cli: `train recipe` routes to trainer.recipes.run with typed overrides; argument errors."""

import types

from medchat.cli import main


def test_train_recipe_routes_to_recipes_run(monkeypatch, capsys):
    import sys

    calls = []
    fake = types.ModuleType("trainer.recipes")
    fake.run = lambda name, overrides: calls.append((name, overrides)) or [types.SimpleNamespace(name="covid-sft")]
    monkeypatch.setitem(sys.modules, "trainer.recipes", fake)
    import trainer

    monkeypatch.setattr(trainer, "recipes", fake, raising=False)
    assert main(["train", "recipe", "covid", "--learning-rate", "1e-4", "--ppo-kl-coef", "0.1",
                 "--set", "lora.r=16"]) == 0
    assert calls == [("covid", {"training.learning_rate": 1e-4, "ppo.kl_coef": 0.1, "lora.r": 16})]
    assert "covid-sft" in capsys.readouterr().out


def test_train_argument_errors(capsys):
    assert main(["train", "recipe"]) == 2
    assert "usage: medchat train recipe" in capsys.readouterr().err
    assert main(["train", "a.yaml", "b.yaml"]) == 2
    assert "at most one recipe" in capsys.readouterr().err
    assert main(["train", "missing.yaml", "--name", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--name", "x", "--dataset", "covid_sft", "--lora-r", "many"]) == 2
    assert "expects int" in capsys.readouterr().err
