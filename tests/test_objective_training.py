"""Training with registered terms: the loss the trainer back-propagates equals γ·L_NTP + Σ weight·A computed
from independent forwards; old configs train the same numbers; stop-gradient and EMA targets; monitors;
the NaN guard; and an end-to-end run with llm-jepa + SIGReg + the geometry monitor."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from transformers import TrainingArguments

from lmjepa.cli.main import main
from lmjepa.data.jsonl import read_examples
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import encode_dataset
from lmjepa.models.loading import add_predictor_tokens
from lmjepa.objectives import AUXILIARIES, Objective, Step
from lmjepa.training.config import JEPAConfig
from lmjepa.training.trainer import EMATarget, JEPATrainer, NonFiniteLossError

from conftest import tiny_llama


@pytest.fixture()
def features(tokenizer, data_dir):
    examples = read_examples(data_dir / "llm-jepa" / "synth_train.jsonl", limit=4)
    return encode_dataset(examples, tokenizer, add_predictor_tokens(tokenizer, 1))[0]


def _trainer(model, tmp_path, jepa, specs=None, **args):
    defaults = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=1, learning_rate=0.1,
                    optim="sgd", lr_scheduler_type="constant", report_to=[], save_strategy="no",
                    remove_unused_columns=False, seed=0, logging_steps=1, disable_tqdm=True)
    defaults.update(args)
    objective = Objective(specs, jepa.gamma, model.config.hidden_size) if specs else None
    return JEPATrainer(model=model, args=TrainingArguments(**defaults), jepa=jepa, objective=objective)


def _reference(model, batch, specs, gamma=1.0):
    """γ·L_NTP + Σ w·A with every need computed by plain, separate forwards."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                output_hidden_states=True)
    enc = model(input_ids=batch["view_input_ids"], attention_mask=batch["view_attention_mask"],
                output_hidden_states=True).hidden_states[-1]
    pred, target = enc[torch.arange(enc.shape[0]), batch["view_enc_index"]].chunk(2)
    step = Step(hidden={-1: out.hidden_states[-1]}, attention_mask=batch["attention_mask"], spans=batch["spans"],
                pred=pred, target=target, lm_head=model.get_output_embeddings().weight, step=0, seed=0)
    loss = gamma * out.loss
    for spec in specs:
        params = {k: v for k, v in spec.items() if k not in ("name", "weight")}
        loss = loss + spec["weight"] * AUXILIARIES[spec["name"]](**params)(step)
    return loss


SPECS = [{"name": "llm-jepa", "weight": 1.0}, {"name": "stp", "weight": 0.5}, {"name": "curvature", "weight": 0.3},
         {"name": "sigreg", "weight": 0.01, "num_slices": 16}, {"name": "vicreg", "weight": 0.2},
         {"name": "uniformity", "weight": 0.1}, {"name": "fisher-jepa", "weight": 0.7}, {"name": "decoder-jepa", "weight": 0.4}]


def test_every_term_trains_the_loss_computed_independently(tokenizer, features, tmp_path):
    model = tiny_llama(len(tokenizer)).train()
    trainer = _trainer(model, tmp_path, JEPAConfig(), SPECS)
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    loss = trainer.compute_loss(model, dict(batch))
    assert loss.item() == pytest.approx(_reference(model, batch, SPECS).item(), rel=1e-5)
    logged = set(trainer._metrics)
    assert {"jepa_loss", "stp_loss", "curvature_loss", "sigreg_loss", "vicreg_loss", "uniformity_loss",
            "fisher_jepa_loss", "decoder_jepa_loss", "jepa_cosine", "lm_loss"} <= logged


@pytest.mark.parametrize("lbd", [0.0, 0.7])
def test_an_old_jepa_config_trains_the_same_numbers(tokenizer, features, tmp_path, lbd):
    model = tiny_llama(len(tokenizer)).train()
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    old = _trainer(model, tmp_path, JEPAConfig(lbd=lbd)).compute_loss(model, dict(batch))
    new = _trainer(model, tmp_path, JEPAConfig(), [{"name": "llm-jepa", "weight": lbd}]).compute_loss(model, dict(batch))
    assert old.item() == new.item()  # bit for bit
    assert old.item() == pytest.approx(_reference(model, batch, [{"name": "llm-jepa", "weight": lbd}]).item(), rel=1e-5)


@pytest.mark.parametrize("mode", ["separate", "packed"])
def test_stop_gradient_target_gets_no_gradient_from_the_jepa_term(tokenizer, features, tmp_path, mode):
    model = tiny_llama(len(tokenizer)).train()
    batch = JEPACollator(tokenizer.pad_token_id, mode, 1)(features)
    jepa = JEPAConfig(views=mode, predictors=1, gamma=0.0)
    live = _trainer(model, tmp_path, jepa, [{"name": "llm-jepa", "weight": 1.0}]).compute_loss(model, dict(batch))
    stop = _trainer(model, tmp_path, jepa, [{"name": "llm-jepa", "weight": 1.0, "target": "stop-grad"}])
    stopped = stop.compute_loss(model, dict(batch))
    assert stopped.item() == pytest.approx(live.item(), rel=1e-5)  # the same value ...
    grads = [torch.autograd.grad(x, [p for p in model.parameters()], allow_unused=True) for x in (live, stopped)]
    differs = any(a is not None and (b is None or not torch.allclose(a, b)) for a, b in zip(*grads))
    assert differs  # ... but not the same gradient: Enc(Code) is a constant under stop-grad


def test_ema_target_follows_the_schedule_and_resumes_from_checkpoints(tokenizer, features, tmp_path):
    model = tiny_llama(len(tokenizer))
    specs = [{"name": "llm-jepa", "weight": 1.0, "target": "ema", "ema_start": 0.5, "ema_end": 0.5}]
    trainer = _trainer(model, tmp_path, JEPAConfig(), specs, max_steps=2, save_strategy="steps", save_steps=1)
    trainer.train_dataset = features
    trainer.data_collator = JEPACollator(tokenizer.pad_token_id)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    ema = trainer.ema.params
    saved = torch.load(tmp_path / "checkpoint-1" / EMATarget.FILE)
    name = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(ema[name], saved[name])  # the second step moved the target again
    # checkpoint-1 held θ̄₁ = ½θ̄₀ + ½θ₁, θ̄₀ = θ₀; resuming from it restores exactly that
    resumed = _trainer(tiny_llama(len(tokenizer)), tmp_path / "r", JEPAConfig(), specs)
    resumed._load_from_checkpoint(str(tmp_path / "checkpoint-1"))
    assert torch.equal(resumed.ema.params[name], saved[name])
    assert not torch.equal(saved[name], start[name])


def test_weight_zero_is_monitored_and_a_nan_term_stops_the_run(tokenizer, features, tmp_path, monkeypatch):
    model = tiny_llama(len(tokenizer)).train()
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    trainer = _trainer(model, tmp_path, JEPAConfig(), [{"name": "stp", "weight": 0.0}])
    loss = trainer.compute_loss(model, dict(batch))
    plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert loss.item() == plain.item() and len(trainer._metrics["stp_loss"]) == 1
    monkeypatch.setattr(AUXILIARIES["curvature"], "forward", lambda self, step: torch.tensor(float("nan")))
    broken = _trainer(model, tmp_path, JEPAConfig(), [{"name": "curvature", "weight": 1.0}])
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        broken.compute_loss(model, dict(batch))


def test_grad_cosine_is_logged_for_every_trained_term(tokenizer, features, tmp_path):
    model = tiny_llama(len(tokenizer)).train()
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    jepa = JEPAConfig(grad_cosine_every=1)
    trainer = _trainer(model, tmp_path, jepa, [{"name": "llm-jepa", "weight": 1.0}, {"name": "curvature", "weight": 1.0}])
    trainer.compute_loss(model, dict(batch))
    assert set(trainer._metrics) >= {"grad_cosine", "grad_cosine_curvature"}
    ntp = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                output_hidden_states=True)
    step = Step(hidden={-1: ntp.hidden_states[-1]}, attention_mask=batch["attention_mask"], spans=batch["spans"])
    params = [p for p in model.parameters()]
    g = [torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss, params, retain_graph=True)])
         for loss in (AUXILIARIES["curvature"]()(step), ntp.loss)]
    assert trainer._metrics["grad_cosine_curvature"][0] == pytest.approx(F.cosine_similarity(*g, dim=0).item(), rel=1e-4)


def test_cli_trains_llm_jepa_with_sigreg_and_logs_geometry(tmp_path, tiny_model_dir, data_dir, capsys):
    config = {"name": "aux", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
              "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 2},
              "jepa": {"predictors": 1, "geometry_every": 1},
              "objectives": [{"name": "llm-jepa", "weight": 1.0}, {"name": "sigreg", "weight": 0.01}],
              "train": {"batch_size": 4, "logging_steps": 1, "save_steps": 10, "extra": {"disable_tqdm": True}},
              "eval": {"max_new_tokens": 4, "batch_size": 2}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    logged = {k for row in history for k in row}
    assert {"jepa_loss", "sigreg_loss", "geometry_curvature", "geometry_anisotropy", "geometry_variance"} <= logged
    path.write_text(yaml.safe_dump({**config, "jepa": {"lbd": 2.0}}))
    assert main(["train", str(path)]) == 2
    assert "jepa.lbd is set, but objectives: is given" in capsys.readouterr().err
