"""docs/objectives/add-an-objective.md, run: its term file registers by itself, its test passes, a config names
the term (a parameter of the wrong type is refused), and a tiny model trains with it."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT
from lmjepa.cli.main import main
from lmjepa.objectives import AUXILIARIES

PAGE = ROOT / "docs" / "objectives" / "add-an-objective.md"


@pytest.fixture()
def hidden_norm():
    term, test = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)[:2]
    namespace: dict = {"pytest": pytest}
    exec(compile(term, str(PAGE), "exec"), namespace)  # the file a contributor adds: @register runs
    try:
        yield namespace, test
    finally:
        AUXILIARIES.pop("hidden-norm", None)


def test_the_page_term_registers_and_its_own_test_passes(hidden_norm):
    _, test = hidden_norm
    assert "hidden-norm" in AUXILIARIES and AUXILIARIES["hidden-norm"].family == "distribution"
    namespace = {"pytest": pytest}
    exec(compile(test, str(PAGE), "exec"), namespace)
    namespace["test_hidden_norm_is_the_mean_squared_norm_of_the_content_tokens"]()


def test_a_config_names_the_new_term_and_a_tiny_model_trains_with_it(hidden_norm, tmp_path, tiny_model_dir, data_dir,
                                                                      capsys):
    config = {"name": "hn", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
              "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 2},
              "objectives": [{"name": "hidden-norm", "weight": 0.01, "layer": "last"}],
              "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "extra": {"disable_tqdm": True}},
              "eval": {"max_new_tokens": 4}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 2 and "objectives[0].layer" in capsys.readouterr().err
    config["objectives"][0]["layer"] = -1
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [t["name"] for t in metrics["objective"]] == ["ntp", "hidden-norm"] and metrics["lbd"] is None
    assert any("hidden_norm_loss" in row for row in metrics["log_history"])
