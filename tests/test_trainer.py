"""JEPATrainer: loss against separate unpadded forwards, gradient accumulation, λ = 0."""

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainingArguments

from lmjepa.training.config import JEPAConfig
from lmjepa.data.jsonl import read_examples
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import encode_dataset
from lmjepa.models.loading import add_predictor_tokens
from lmjepa.training.trainer import JEPATrainer

from conftest import KillAfterStep, Killed, tiny_llama


@pytest.fixture()
def features(tokenizer, data_dir):
    examples = read_examples(data_dir / "llm-jepa" / "synth_train.jsonl", limit=4)
    features, _ = encode_dataset(examples, tokenizer, add_predictor_tokens(tokenizer, 1))
    assert len({len(f["input_ids"]) for f in features}) > 1  # unequal lengths: padding and token counts matter
    return features


def _trainer(model, tokenizer, tmp_path, jepa: JEPAConfig, features=None, **args) -> JEPATrainer:
    defaults = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=1, learning_rate=0.1, optim="sgd",
        lr_scheduler_type="constant", max_grad_norm=0.0, report_to=[], save_strategy="no",
        remove_unused_columns=False, seed=0, logging_steps=1, disable_tqdm=True,
    )
    defaults.update(args)
    return JEPATrainer(model=model, args=TrainingArguments(**defaults), train_dataset=features,
                       data_collator=JEPACollator(tokenizer.pad_token_id), jepa=jepa)


def _reference_loss(model, features, lbd, gamma):
    """Independent computation: one unpadded forward per example and per view."""
    ce_sum, count, distances = 0.0, 0, []
    for f in features:
        ids = torch.tensor([f["input_ids"]])
        labels = torch.tensor(f["labels"][1:])
        logits = model(ids).logits[0, :-1]
        keep = labels != -100
        ce_sum = ce_sum + F.cross_entropy(logits[keep], labels[keep], reduction="sum")
        count += int(keep.sum())
        text = model(torch.tensor([f["text_ids"]]), output_hidden_states=True).hidden_states[-1][0, -1]
        code = model(torch.tensor([f["code_ids"]]), output_hidden_states=True).hidden_states[-1][0, -1]
        distances.append(1 - F.cosine_similarity(text, code, dim=0))
    return gamma * ce_sum / count + lbd * torch.stack(distances).mean()


@pytest.mark.parametrize("lbd, gamma", [(1.0, 1.0), (0.5, 0.3), (0.0, 1.0)])
def test_loss_matches_separate_unpadded_forwards(tokenizer, features, tmp_path, lbd, gamma):
    model = tiny_llama(len(tokenizer))
    trainer = _trainer(model, tokenizer, tmp_path, JEPAConfig(lbd=lbd, gamma=gamma))
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    assert loss.item() == pytest.approx(_reference_loss(model, features, lbd, gamma).item(), rel=1e-5)


def test_lambda_zero_equals_plain_model_loss_and_still_monitors(tokenizer, features, tmp_path):
    model = tiny_llama(len(tokenizer))
    trainer = _trainer(model, tokenizer, tmp_path, JEPAConfig(lbd=0.0, monitor=True))
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert loss.item() == plain.item()  # bit-for-bit the NTP loss
    # monitored without gradient: the values equal the independent per-example computation
    with torch.no_grad():
        reference_jepa = _reference_loss(model, features, lbd=1.0, gamma=0.0).item()
        reference_ntp = _reference_loss(model, features, lbd=0.0, gamma=1.0).item()
    assert trainer._metrics["jepa_loss"] == [pytest.approx(reference_jepa, rel=1e-5)]
    assert trainer._metrics["lm_loss"] == [pytest.approx(reference_ntp, rel=1e-5)]


def _one_step_update(tokenizer, features, tmp_path, batch_size, accumulation, lbd):
    model = tiny_llama(len(tokenizer), seed=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _trainer(model, tokenizer, tmp_path, JEPAConfig(lbd=lbd), features,
                       per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation)
    trainer.train()
    return {n: p.detach() - before[n] for n, p in model.named_parameters()}


@pytest.mark.parametrize("lbd", [0.0, 1.0])
def test_gradient_accumulation_matches_full_batch(tokenizer, features, tmp_path, lbd):
    full = _one_step_update(tokenizer, features, tmp_path / "full", 4, 1, lbd)
    accumulated = _one_step_update(tokenizer, features, tmp_path / "accum", 2, 2, lbd)
    assert max(d.abs().max().item() for d in full.values()) > 1e-4  # the step did move the weights
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], rtol=1e-4, atol=1e-7, msg=name)


def test_jepa_term_changes_the_update(tokenizer, features, tmp_path):
    """Guards the test above: with λ = 1 the update differs from the NTP-only update."""
    ntp = _one_step_update(tokenizer, features, tmp_path / "ntp", 4, 1, 0.0)
    jepa = _one_step_update(tokenizer, features, tmp_path / "jepa", 4, 1, 1.0)
    assert max((ntp[n] - jepa[n]).abs().max().item() for n in ntp) > 1e-5


def test_gradient_cosine_matches_separate_backward_passes(tokenizer, features, tmp_path):
    model = tiny_llama(len(tokenizer))
    trainer = _trainer(model, tokenizer, tmp_path, JEPAConfig(lbd=1.0, grad_cosine_every=1))
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    model.train()
    trainer.compute_loss(model, dict(batch))
    logged = trainer._metrics["grad_cosine"][-1]

    def flat_grad(loss):
        model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    ntp = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    g_ntp = flat_grad(ntp)
    hidden = model(input_ids=batch["view_input_ids"], attention_mask=batch["view_attention_mask"],
                   output_hidden_states=True).hidden_states[-1]
    enc = hidden[torch.arange(hidden.shape[0]), batch["view_enc_index"]]
    pred, target = enc.chunk(2)
    g_jepa = flat_grad((1 - F.cosine_similarity(pred, target, dim=-1)).mean())
    expected = (g_ntp @ g_jepa / (g_ntp.norm() * g_jepa.norm())).item()
    assert logged == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert -1 <= logged <= 1 and abs(logged) > 1e-4


def _official_reference_update(tokenizer, features, lbd, gamma, lr=0.1):
    """Independent: the official RepresentationTrainer's loss per row (micro-batch of 1), γ·mean CE + λ·(1 − cos),
    summed over the accumulated micro-batches without dividing (the Trainer leaves it undivided), one SGD step."""
    model = tiny_llama(len(tokenizer), seed=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    total = sum(_reference_loss(model, [f], lbd, gamma) for f in features)
    total.backward()
    return {n: -lr * p.grad for n, p in model.named_parameters()}, before


@pytest.mark.parametrize("lbd", [1.0, 0.5])
def test_official_accumulation_scaling_is_the_official_undivided_loss(tokenizer, features, tmp_path, lbd):
    """jepa.accumulation_scaling: official at GA 4 × batch 1 = Σ over micro-batches of (γ·micro-batch mean NTP +
    λ·JEPA), undivided; lmjepa's default at the same GA is the global-batch mean. Fails if the switch is inert."""
    expected, _ = _official_reference_update(tokenizer, features, lbd, 1.0)
    model = tiny_llama(len(tokenizer), seed=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _trainer(model, tokenizer, tmp_path / "official", JEPAConfig(lbd=lbd, accumulation_scaling="official"),
                       features, per_device_train_batch_size=1, gradient_accumulation_steps=4)
    trainer.train()
    official = {n: p.detach() - before[n] for n, p in model.named_parameters()}
    for name in expected:
        torch.testing.assert_close(official[name], expected[name], rtol=1e-4, atol=1e-7, msg=name)
    lmjepa = _one_step_update(tokenizer, features, tmp_path / "lmjepa", 1, 4, lbd)
    norm = lambda update: torch.sqrt(sum(d.pow(2).sum() for d in update.values())).item()
    assert 3.0 < norm(official) / norm(lmjepa) < 5.0  # ≈ GA×: the whole loss, NTP included, goes undivided


@pytest.mark.parametrize("train, objectives", [({"gradient_accumulation_steps": 1}, None),
                                               ({"gradient_accumulation_steps": 4}, [{"name": "sigreg", "weight": 0.0}])])
def test_official_accumulation_scaling_that_cannot_act_is_refused(train, objectives):
    from lmjepa.config import from_dict
    from lmjepa.errors import ConfigError
    from lmjepa.training.config import RunConfig

    values = {"jepa": {"accumulation_scaling": "official"}, "train": train}
    if objectives:
        values["objectives"] = objectives
    with pytest.raises(ConfigError, match="accumulation_scaling.*cannot act"):
        from_dict(values, RunConfig).validate()
    with pytest.raises(ConfigError, match="cannot act"):  # an NTP-only run: the official code uses the stock Trainer
        from_dict({"jepa": {"accumulation_scaling": "official", "lbd": 0.0}, "train": {"gradient_accumulation_steps": 4}},
                  RunConfig).validate()


def test_a_resumed_run_records_the_uninterrupted_train_loss(tokenizer, features, tmp_path):
    """Killed after the step-4 checkpoint (whose step-4 loss was not yet logged: logging every 3 steps) and
    resumed, the run's train_loss equals the uninterrupted run's; the Trainer's own figure averages the last
    piece only."""
    args = dict(per_device_train_batch_size=1, max_steps=6, save_strategy="steps", save_steps=2, logging_steps=3)

    def trainer(out, callbacks=()):
        t = _trainer(tiny_llama(len(tokenizer), seed=1), tokenizer, out, JEPAConfig(lbd=1.0), features, **args)
        for callback in callbacks:
            t.add_callback(callback)
        return t

    whole = trainer(tmp_path / "whole")
    whole.train()

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        trainer(out, [KillAfterStep(5)]).train()
    (out / "checkpoint-6").exists() and pytest.fail("the kill came too late")
    resumed = trainer(out)
    result = resumed.train(resume_from_checkpoint=str(out / "checkpoint-4"))
    assert resumed.state.global_step == 6
    assert resumed.training_loss() == pytest.approx(whole.training_loss(), rel=1e-6)
    assert abs(result.training_loss - whole.training_loss()) > 1e-3  # the Trainer's own: the last 2 steps only
    assert whole.training_loss() == pytest.approx(whole.state.log_history[-1]["train_loss"], rel=1e-12)


def test_resumed_loss_total_of_a_checkpoint_without_a_ledger_comes_from_its_logged_windows(tmp_path):
    import json

    from lmjepa.training.trainer import resumed_loss_total

    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"loss": 2.0, "step": 10}, {"loss": 1.5, "step": 20}, {"eval_loss": 9.0, "step": 20}, {"loss": 1.0, "step": 25}]}))
    assert resumed_loss_total(str(tmp_path)) == 2.0 * 10 + 1.5 * 10 + 1.0 * 5
    (tmp_path / "lmjepa_loss.json").write_text(json.dumps({"global_step": 25, "loss_total": 41.25}))
    assert resumed_loss_total(str(tmp_path)) == 41.25  # the ledger wins: it holds unlogged steps too
