"""View modes: packed and shared_prefix compute the same Enc vectors, losses and gradients as
separate forwards of the same views (fp32, sdpa and eager), without NaN on padded rows; loss dropout."""

import multiprocessing

import pytest
import torch
from transformers import TrainingArguments

from lmjepa.training.config import JEPAConfig
from lmjepa.data.jsonl import read_examples
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import encode_dataset
from lmjepa.models.loading import add_predictor_tokens, load_tokenizer
from lmjepa.objectives.jepa import jepa_dropped
from lmjepa.data.packing import forward as view_forward
from lmjepa.training.trainer import JEPATrainer

from conftest import tiny_llama


def _features(base_tokenizer_path, data_dir, k, n=5):
    tokenizer = load_tokenizer(base_tokenizer_path)
    predictor_ids = add_predictor_tokens(tokenizer, k)
    examples = read_examples(data_dir / "llm-jepa" / "synth_train.jsonl", limit=n)
    features, _ = encode_dataset(examples, tokenizer, predictor_ids)
    return tokenizer, features


def _prompt_view(features, k):
    """The shared_prefix Text view as separate rows: templated prompt + predictor tokens."""
    return [{**f, "text_ids": f["input_ids"][: f["prompt_len"]] + (f["text_ids"][-k:] if k else [])} for f in features]


def _alone(model, ids):
    return model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0, -1]


def _split(batch):
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    views = {k: v for k, v in batch.items() if k not in inputs}
    return inputs, views


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("mode", ["separate", "packed", "shared_prefix"])
def test_enc_vectors_match_unpadded_single_view_forwards(base_tokenizer_path, data_dir, mode, k, attn):
    tokenizer, features = _features(base_tokenizer_path, data_dir, k)
    model = tiny_llama(len(tokenizer), attn=attn).eval()
    batch = JEPACollator(tokenizer.pad_token_id, mode, k)(features)
    inputs, views = _split(batch)
    with torch.no_grad():
        result = view_forward(mode, model, inputs, views)
        outputs, pred, target = result.outputs, result.pred, result.target
        plain = model(**inputs).loss
        reference = _prompt_view(features, k) if mode == "shared_prefix" else features
        expected_pred = torch.stack([_alone(model, f["text_ids"]) for f in reference])
        expected_target = torch.stack([_alone(model, f["code_ids"]) for f in reference])
    assert torch.isfinite(pred).all() and torch.isfinite(target).all() and torch.isfinite(outputs.logits).all()
    for got, want in ((pred, expected_pred), (target, expected_target)):
        relative = ((got - want).norm(dim=-1) / want.norm(dim=-1)).max().item()
        assert relative <= 1e-4, f"{mode} k={k} {attn}: relative error {relative:.2e}"
    assert outputs.loss.item() == pytest.approx(plain.item(), rel=1e-5)  # NTP untouched by the packing


def _loss_and_grads(model, tokenizer, features, mode, k, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], remove_unused_columns=False, disable_tqdm=True)
    trainer = JEPATrainer(model=model, args=args, jepa=JEPAConfig(lbd=1.0, views=mode, predictors=k))
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(JEPACollator(tokenizer.pad_token_id, mode, k)(features)))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("mode", ["packed", "shared_prefix"])
def test_loss_and_gradients_match_separate(base_tokenizer_path, data_dir, tmp_path, mode, attn):
    k = 1
    tokenizer, features = _features(base_tokenizer_path, data_dir, k)
    model = tiny_llama(len(tokenizer), attn=attn)
    same_views = _prompt_view(features, k) if mode == "shared_prefix" else features
    loss_ref, grads_ref = _loss_and_grads(model, tokenizer, same_views, "separate", k, tmp_path)
    loss, grads = _loss_and_grads(model, tokenizer, features, mode, k, tmp_path)
    assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, grads_ref[name], rtol=1e-3, atol=1e-6, msg=name)


# ---- loss dropout -------------------------------------------------------------------------------

def _pattern(queue, seed, rate):
    queue.put([jepa_dropped(seed, step, rate) for step in range(400)])


def test_dropout_pattern_is_identical_across_processes_and_has_rate_alpha():
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_pattern, args=(queue, 82, 0.75)) for _ in range(2)]
    for w in workers:
        w.start()
    patterns = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    assert patterns[0] == patterns[1] == [jepa_dropped(82, s, 0.75) for s in range(400)]
    rate = sum(patterns[0]) / 400
    assert abs(rate - 0.75) < 3 * (0.75 * 0.25 / 400) ** 0.5  # within 3 standard errors
    assert patterns[0] != [jepa_dropped(23, s, 0.75) for s in range(400)]  # the seed matters
    assert not any(jepa_dropped(82, s, 0.0) for s in range(100))
    with pytest.raises(ValueError):
        jepa_dropped(0, 0, 1.0)


@pytest.mark.parametrize("mode", ["separate", "packed", "shared_prefix"])
def test_dropped_steps_compute_no_view_tokens(base_tokenizer_path, data_dir, tmp_path, mode):
    k, rate, seed = 1, 0.5, 82
    tokenizer, features = _features(base_tokenizer_path, data_dir, k, n=3)
    model = tiny_llama(len(tokenizer))
    seen = []
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].numel()))
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], remove_unused_columns=False, seed=seed)
    trainer = JEPATrainer(model=model, args=args, jepa=JEPAConfig(lbd=1.0, views=mode, predictors=k, dropout=rate,
                                                                   dropout_compensate=True, monitor=False))
    batch = JEPACollator(tokenizer.pad_token_id, mode, k)(features)
    plain_tokens = batch["input_ids"].numel()
    dropped_step = next(s for s in range(100) if jepa_dropped(seed, s, rate))
    kept_step = next(s for s in range(100) if not jepa_dropped(seed, s, rate))
    model.train()

    trainer.state.global_step = dropped_step
    seen.clear()
    dropped_loss = trainer.compute_loss(model, dict(batch))
    assert seen == [plain_tokens]  # one forward, over the plain NTP rows only
    plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert dropped_loss.item() == pytest.approx(plain.item(), rel=1e-6)

    trainer.state.global_step = kept_step
    seen.clear()
    kept_loss = trainer.compute_loss(model, dict(batch))
    assert sum(seen) > plain_tokens  # the view tokens were computed
    jepa = trainer._metrics["jepa_loss"][-1]
    assert kept_loss.item() == pytest.approx(plain.item() + jepa / (1 - rate), rel=1e-5)  # λ/(1 − α)


def test_view_modes_are_one_registry_and_auto_picks_the_measured_fastest_exact_mode():
    from lmjepa.data.packing import VIEW_MODE_REGISTRY, JEPACollator, resolve_views, view_mode

    assert set(VIEW_MODE_REGISTRY) == {"separate", "packed", "shared_prefix", "multiview"}
    assert resolve_views("auto", "cpu")[0] == "separate"
    assert resolve_views("auto", "cuda", "sdpa")[0] == "packed"
    assert resolve_views("auto", "cuda", "flash_attention_2")[0] == "separate"  # no 4-D block mask there
    assert resolve_views("shared_prefix", "cuda") == ("shared_prefix", "set in the config")  # never overridden
    assert "1.78×" in resolve_views("auto", "cpu")[1]
    with pytest.raises(ValueError, match="choose one of"):
        view_mode("sideways")
    with pytest.raises(ValueError, match="own collator"):
        JEPACollator(0, "multiview")


def test_views_auto_trains_exactly_as_the_mode_it_resolves_to(tmp_path, tiny_model_dir, data_dir, capsys):
    import json

    import yaml

    from lmjepa.cli.main import main

    def run(views, name):
        config = {"name": name, "output_dir": str(tmp_path / name), "model": {"name": str(tiny_model_dir)},
                  "data": {"data_dir": str(data_dir), "max_train_examples": 8, "max_eval_examples": 2},
                  "jepa": {"views": views, "predictors": 1},
                  "train": {"batch_size": 4, "learning_rate": 1e-3, "extra": {"disable_tqdm": True}},
                  "eval": {"max_new_tokens": 4}}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        assert main(["train", str(tmp_path / f"{name}.yaml")]) == 0
        return json.loads((tmp_path / name / "metrics.json").read_text())

    auto, separate = run("auto", "auto"), run("separate", "separate")
    assert auto["view_mode"] == "separate" and auto["train_loss"] == separate["train_loss"]
    assert (tmp_path / "auto" / "predictions.jsonl").read_text() == (tmp_path / "separate" / "predictions.jsonl").read_text()
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "auto.yaml"), "--rows", "1", "--json"]) == 0
    views = json.loads(capsys.readouterr().out)["views"]
    assert views["requested"] == "auto" and views["mode"] == "separate" and "1.78×" in views["why"]
