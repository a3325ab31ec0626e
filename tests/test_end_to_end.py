"""End to end with a tiny model built in code on real NL-RX rows: CLI train + evaluate, resume after a
NaN stop, LoRA with trainable predictor rows, from-scratch models, config overrides."""

import json
import time

import pytest
import torch
import yaml
from transformers import TrainerState

from lmjepa.cli.main import main
from lmjepa.config import parse_override
from lmjepa.evaluation import regex
from lmjepa.pipeline.run import train_and_evaluate
from lmjepa.training.config import RunConfig, load_run_config as load_config
from lmjepa.models.loading import load_model, load_tokenizer
from lmjepa.training import run as run_module, run_folder
from lmjepa.training.run import build_model_and_tokenizer
from lmjepa.training.trainer import JEPATrainer, NonFiniteLossError


def _config(tmp_path, tiny_model_dir, data_dir, **sections) -> dict:
    config = {
        "name": "tiny",
        "output_dir": str(tmp_path / "run"),
        "model": {"name": str(tiny_model_dir)},
        "task": "nlrx-synth", "data": {"data_dir": str(data_dir), "max_train_examples": 16, "max_eval_examples": 6},
        "jepa": {"lbd": 1.0, "predictors": 1},
        "train": {"batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 2,
                  "extra": {"disable_tqdm": True}},
        "eval": {"max_new_tokens": 6, "batch_size": 4},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    return config


def _write(tmp_path, config) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_cli_train_two_variants_then_evaluate(tmp_path, tiny_model_dir, data_dir, capsys):
    config = _config(tmp_path, tiny_model_dir, data_dir, variants={"ntp": {"jepa.lbd": 0.0}, "llm-jepa": {}})
    assert main(["train", _write(tmp_path, config)]) == 0
    table = capsys.readouterr().out
    assert "| ntp | nlrx-synth | 0.0 | 1 | semantic_match |" in table and "| llm-jepa | nlrx-synth | 1.0 | 1 |" in table
    for variant, lbd in (("ntp", 0.0), ("llm-jepa", 1.0)):
        folder = tmp_path / "run" / variant
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["n"] == 6 and metrics["lbd"] == lbd and metrics["train_steps"] == 4
        assert metrics["environment"]["torch"] == torch.__version__ and metrics["environment"]["device"] == "cpu"
        assert metrics["view_mode"] == "separate" and [t["name"] for t in metrics["objective"]] == ["ntp", "llm-jepa"]
        logged = {k for row in metrics["log_history"] for k in row}
        assert {"lm_loss", "jepa_loss", "jepa_cosine"} <= logged  # λ = 0 still monitors the JEPA distance
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 6
        # every reported number is recomputed here from the saved predictions, independently
        verdicts = [regex.equivalent(r["prediction"], r["reference"]) for r in rows]
        assert metrics["exact_match"] == pytest.approx(100 * sum(r["prediction"].strip() == r["reference"].strip()
                                                                 for r in rows) / 6)
        assert metrics["semantic_match"] == pytest.approx(100 * sum(v is True for v in verdicts) / 6)
        assert metrics["undecided"] == sum(v is None for v in verdicts)
        regular = [v for v, r in zip(verdicts, rows) if regex.target_language(r["reference"]) == "regular"]
        assert metrics["n_nondegenerate"] == len(regular)
        assert metrics["semantic_match_nondegenerate"] == pytest.approx(100 * sum(v is True for v in regular)
                                                                        / max(1, len(regular)))
        assert metrics["contains_target"] == pytest.approx(100 * sum(r["reference"].strip() in r["prediction"]
                                                                     for r in rows) / 6)
        assert all(isinstance(r["stopped"], bool) for r in rows)
        log_text = (folder / "run.log").read_text()
        assert "step 4: " in log_text and "lm_loss=" in log_text  # the training log is in run.log
        assert load_config(folder / "config.yaml").jepa.lbd == lbd
        assert (folder / "model" / "config.json").exists() and not list(folder.glob("checkpoint-*"))
        assert list((folder / "runs").rglob("events.out.tfevents.*"))  # TensorBoard logs
    assert (tmp_path / "run" / "comparison.md").exists()

    # Standalone evaluation of a finished run folder reproduces the greedy predictions.
    before = (tmp_path / "run" / "ntp" / "predictions.jsonl").read_text()
    assert main(["evaluate", str(tmp_path / "run" / "ntp"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "predictions.jsonl").read_text() == before
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["lbd"] == 0.0  # the trained run's λ

    # `lmjepa table`: rows named below the runs' common folder
    runs = [str(tmp_path / "run" / v) for v in ("ntp", "llm-jepa")]
    assert main(["table", *runs, "--out", str(tmp_path / "t.md")]) == 0
    rows = (tmp_path / "t.md").read_text().splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| ntp", "| llm-jepa"] and "| 0.0 |" in rows[0]
    assert main(["table", str(tmp_path / "run" / "nope")]) == 2
    assert "metrics.json: not found (is" in capsys.readouterr().err


def test_nan_stops_keeps_checkpoint_and_rerun_resumes(tmp_path, tiny_model_dir, data_dir, monkeypatch):
    raw = _config(tmp_path, tiny_model_dir, data_dir)
    config = load_config(_write(tmp_path, raw))

    class PoisonedTrainer(JEPATrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if self.state.global_step < 2:
                time.sleep(1.0)  # two slow steps before checkpoint-2: the resumed run must count them
            if self.state.global_step == 3:
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))
            return super().compute_loss(model, inputs, *args, **kwargs)

    monkeypatch.setattr(run_module, "JEPATrainer", PoisonedTrainer)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 3"):
        train_and_evaluate(config)
    out = tmp_path / "run"
    assert (out / "checkpoint-2").is_dir() and not (out / "metrics.json").exists()
    assert "non-finite loss" in (out / "run.log").read_text()
    saved = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["stateful_callbacks"]
    before, cpu_before = (saved["TrainingClock"]["args"][k] for k in ("seconds_before", "cpu_seconds_before"))
    assert before >= 2.0 and cpu_before > 0  # the two 1-s sleeps, recorded with the checkpoint

    monkeypatch.setattr(run_module, "JEPATrainer", JEPATrainer)
    metrics = train_and_evaluate(config)
    assert "resuming from" in (out / "run.log").read_text() and metrics["train_steps"] == 4
    assert metrics["train_seconds"] >= round(before, 1)  # the steps before the checkpoint are counted too
    assert metrics["train_cpu_seconds"] >= round(cpu_before, 1)
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in metrics["log_history"] if "loss" in row)

    class MustNotRun(JEPATrainer):
        def __init__(self, *args, **kwargs):
            raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(run_module, "JEPATrainer", MustNotRun)
    assert train_and_evaluate(config) == metrics
    # The same folder with another config is refused, never silently reused.
    with pytest.raises(ValueError, match="holds a run with a different config"):
        train_and_evaluate(config.with_overrides({"jepa.lbd": 0.5}))


def test_training_clock_from_a_checkpoint_without_its_entry(tmp_path, caplog):
    # a checkpoint written before lmjepa recorded its seconds: the clock starts at 0 and adds its entry,
    # which the Trainer's next save updates (it would raise KeyError without one)
    TrainerState(stateful_callbacks={"TrainerControl": {"args": {}, "attributes": {}}}).save_to_json(
        str(tmp_path / "trainer_state.json"))
    with caplog.at_level("WARNING", logger="lmjepa"):
        clock = run_folder.TrainingClock.resumed(tmp_path)
    assert "records no training seconds: train_seconds and train_cpu_seconds count this process only" in caplog.text
    assert clock.seconds_before == 0.0 and run_folder.TrainingClock.resumed(None).seconds_before == 0.0
    state = TrainerState.load_from_json(str(tmp_path / "trainer_state.json"))
    clock.on_train_begin(None, state, None)
    assert state.stateful_callbacks["TrainingClock"]["args"]["seconds_before"] >= 0.0
    time.sleep(0.05)
    assert 0.05 <= clock.seconds() < 5  # seconds since on_train_begin
    assert run_folder.TrainingClock(**{"seconds_before": 7.5}).state()["args"]["seconds_before"] >= 7.5


def test_training_clock_counts_cpu_seconds_not_pauses(tmp_path, caplog):
    import resource

    def rusage() -> float:  # an independent clock: getrusage, not clock_gettime
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    clock = run_folder.TrainingClock(seconds_before=10.0, cpu_seconds_before=4.0)
    wall, cpu, used = clock.seconds(), clock.cpu_seconds(), rusage()
    time.sleep(0.3)  # a paused process: wall time passes, CPU time does not
    assert clock.seconds() - wall >= 0.3 and clock.cpu_seconds() - cpu < 0.1
    cpu, used = clock.cpu_seconds(), rusage()
    total = sum(i * i for i in range(3_000_000))  # busy: CPU time passes
    assert total > 0 and clock.cpu_seconds() - cpu == pytest.approx(rusage() - used, abs=0.05)
    assert clock.cpu_seconds() > 4.0 and clock.state()["args"]["cpu_seconds_before"] > 4.0
    # a checkpoint written before CPU seconds were recorded: its wall seconds carry on, CPU starts at 0, logged
    TrainerState(stateful_callbacks={"TrainingClock": {"args": {"seconds_before": 3.0}, "attributes": {}}}).save_to_json(
        str(tmp_path / "trainer_state.json"))
    with caplog.at_level("WARNING", logger="lmjepa"):
        old = run_folder.TrainingClock.resumed(tmp_path)
    assert (old.seconds_before, old.cpu_seconds_before) == (3.0, 0.0)
    assert "records no training CPU seconds: train_cpu_seconds counts this process only" in caplog.text


def test_lora_trains_predictor_rows_and_merges(tmp_path, tiny_model_dir, data_dir):
    raw = _config(tmp_path, tiny_model_dir, data_dir, model={"lora": {"r": 4, "alpha": 8}},
                  data={"max_train_examples": 8, "max_eval_examples": 2})
    config = load_config(_write(tmp_path, raw))
    _, tokenizer, predictor_ids = build_model_and_tokenizer(config)
    initial = load_model(str(tiny_model_dir), tokenizer, seed=config.train.seed).get_input_embeddings().weight.detach().clone()
    train_and_evaluate(config)
    trained = load_model(str(tmp_path / "run" / "model"), load_tokenizer(str(tmp_path / "run" / "model")))
    rows = trained.get_input_embeddings().weight.detach()
    assert rows.shape[0] == initial.shape[0]
    predictor = predictor_ids[0]
    assert not torch.allclose(rows[predictor], initial[predictor])  # predictor row trained under LoRA
    assert torch.equal(rows[:predictor], initial[:predictor])  # other embedding rows frozen


def test_from_scratch_builds_random_model_of_given_shape(tiny_model_dir, tokenizer):
    a = load_model(str(tiny_model_dir), tokenizer, from_scratch=True, config_overrides={"num_hidden_layers": 1}, seed=3)
    b = load_model(str(tiny_model_dir), tokenizer, from_scratch=True, config_overrides={"num_hidden_layers": 1}, seed=3)
    pretrained = load_model(str(tiny_model_dir), tokenizer)
    assert a.config.num_hidden_layers == 1 and len(a.model.layers) == 1
    assert torch.equal(a.model.layers[0].mlp.up_proj.weight, b.model.layers[0].mlp.up_proj.weight)  # seeded
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, pretrained.model.layers[0].mlp.up_proj.weight)
    with pytest.raises(ValueError, match="only apply with model.from_scratch"):
        load_model(str(tiny_model_dir), tokenizer, config_overrides={"num_hidden_layers": 1})


def test_config_overrides_and_errors(tmp_path, capsys):
    config = RunConfig().with_overrides({"jepa.lbd": 0.5, "train.extra.fp16": False})
    assert config.jepa.lbd == 0.5 and config.train.extra == {"fp16": False}
    assert parse_override("jepa.distance=infonce") == ("jepa.distance", "infonce")
    assert RunConfig().with_overrides(dict([parse_override("train.learning_rate=2e-5")])).train.learning_rate == 2e-5
    with pytest.raises(KeyError, match="unknown config key 'jepa.lambda'"):
        RunConfig().with_overrides({"jepa.lambda": 1.0})
    path = tmp_path / "bad.yaml"
    path.write_text("jepa: {lbd: 1.0, typo: 2}\n")
    assert main(["train", str(path)]) == 2
    assert f"{path}: unknown config key 'jepa.typo'" in capsys.readouterr().err


def test_variants_are_resolved_each_from_the_base_not_from_each_other(tmp_path):
    """A variant that sets jepa.lbd beside one that uses objectives: (which forbids a moved jepa.lbd): each
    variant's config is the base plus its own overrides, and neither is validated against the other
    (found on a GPU run of benchmarks/cuda_parity.py: `lmjepa train` refused such a config)."""
    from lmjepa.training.run_folder import run_variants

    config = RunConfig(name="v", output_dir=str(tmp_path / "v"),
                       variants={"ntp": {"jepa.lbd": 0.0}, "stp": {"objectives": [{"name": "stp", "weight": 0.02}]},
                                 "llm-jepa": {}})
    config.validate()
    seen = {}
    run_variants(config, lambda variant, force: seen.setdefault(variant.name, variant) and {})
    assert list(seen) == ["v/ntp", "v/stp", "v/llm-jepa"]
    assert (seen["v/ntp"].jepa.lbd, seen["v/ntp"].objectives) == (0.0, [])
    assert (seen["v/stp"].jepa.lbd, seen["v/stp"].objectives[0]["name"]) == (1.0, "stp")
    assert (seen["v/llm-jepa"].jepa.lbd, seen["v/llm-jepa"].objectives) == (1.0, [])
    assert all(v.variants == {} and v.output_dir == str(tmp_path / "v" / v.name[2:]) for v in seen.values())
    assert set(run_variants(config, lambda variant, force: {"ok": 1}, ["stp"])) == {"stp"}


def test_without_variants_returns_a_copy_and_leaves_the_config_alone():
    """The one way a variant, sweep cell or audit cell gets its base (``ConfigBase.without_variants``)."""
    from lmjepa.training.pretrain_config import PretrainConfig

    for config in (RunConfig(name="v", variants={"ntp": {"jepa.lbd": 0.0}}),
                   PretrainConfig(name="p", variants={"mlm-only": {"objective.lambda_mode": "mlm_only"}})):
        base = config.without_variants()
        assert base.variants == {} and base is not config
        assert len(config.variants) == 1  # the original keeps its variants
        assert base.to_dict() == {**config.to_dict(), "variants": {}}
    plain = RunConfig(name="n")
    assert plain.without_variants() is plain  # nothing to drop: no copy
