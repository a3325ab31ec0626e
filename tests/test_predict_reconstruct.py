"""The Predict-and-Reconstruct model: attention-masked context equals dropping the hidden tokens,
loss composition per λ mode, EMA, and the control's identical initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig

from lmjepa.models.predict_reconstruct import PredictReconstruct, encode_subset
from lmjepa.objectives.predict_reconstruct import collapse_monitors, ema_momentum
from lmjepa.training.monitoring import EMATarget
from lmjepa.data.block_masks import sample_block_masks


def _config(**kw) -> BertConfig:
    values = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(kw)
    return BertConfig(**values)


def _batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = [20, 14, 9]
    ids = torch.zeros(3, 22, dtype=torch.long)
    attention = torch.zeros(3, 22, dtype=torch.long)
    maskable = torch.zeros(3, 22, dtype=torch.bool)
    for b, n in enumerate(lengths):
        ids[b, 0], ids[b, n + 1] = 1, 2  # [CLS] ... [SEP]
        ids[b, 1 : n + 1] = torch.randint(5, 60, (n,), generator=generator)
        attention[b, : n + 2] = 1
        maskable[b, 1 : n + 1] = True
    masks = sample_block_masks(maskable, min_keep=3, generator=generator)
    labels = torch.full_like(ids, -100)
    masked = ids.clone()
    pick = maskable & (torch.rand(ids.shape, generator=generator) < 0.3)
    labels[pick], masked[pick] = ids[pick], 3  # [MASK] = 3
    return dict(input_ids=masked, attention_mask=attention, labels=labels, clean_ids=ids,
                context=masks.context, targets=masks.targets, usable=masks.usable)


def _manual_jepa(model: PredictReconstruct, batch) -> torch.Tensor:
    """Independent computation: gather the visible tokens (with their original positions) instead of masking."""
    cosines = []
    for b in range(len(batch["input_ids"])):
        if not batch["usable"][b]:
            continue
        n = int(batch["attention_mask"][b].sum())
        visible = batch["context"][b].clone()
        visible[0] = visible[n - 1] = True
        pos = visible.nonzero().flatten()
        # An explicit all-ones mask: with attention_mask=None, transformers >= 5.25 reads position ids that
        # jump as packed-sequence boundaries and attends block-diagonally (found under issue 32).
        z = model.encoder(input_ids=batch["input_ids"][b, pos][None], position_ids=pos[None],
                          attention_mask=torch.ones(1, len(pos), dtype=torch.long)).last_hidden_state[0]
        h = model.target_encoder(input_ids=batch["clean_ids"][b, :n][None]).last_hidden_state[0]
        h = F.layer_norm(h, h.shape[-1:])
        for m in range(batch["targets"].shape[1]):
            target = batch["targets"][b, m].nonzero().flatten()
            order = torch.cat([pos, target])
            embeds = torch.cat([model.predictor_in(z), model.mask_token.expand(len(target), -1)])
            out = model.predictor(inputs_embeds=embeds[None], position_ids=order[None],
                                  attention_mask=torch.ones(1, len(order), dtype=torch.long)).last_hidden_state[0]
            predicted = model.predictor_out(out[len(pos):])
            cosines.append(F.cosine_similarity(predicted, h[target], dim=-1))
    return 1 - torch.cat(cosines).mean()


def test_jepa_loss_equals_gathered_computation_and_loss_composition():
    torch.manual_seed(0)
    model = PredictReconstruct(_config(), predictor_layers=1, predictor_hidden=16, lambda_mode="fixed", lbd=0.3)
    with torch.no_grad():  # identical weights would hide a swapped encoder; perturb the target first
        for p in model.target_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    batch = _batch()
    out = model(**batch)
    expected = _manual_jepa(model, batch)
    torch.testing.assert_close(out["jepa_loss"], expected.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["loss"], 0.3 * out["jepa_loss"] + 0.7 * out["mlm_loss"])
    out["loss"].backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())  # no gradient into the EMA target
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.mask_token.grad.abs().sum() > 0


@pytest.mark.parametrize("embeds", [False, True])
def test_encode_subset_equals_an_explicit_4d_mask(embeds):
    """The gathered, right-padded encoding equals full attention over the kept keys, written as a 4-D additive
    mask (0 keeps, finfo.min blocks): independent of how a release reads a 2-D mask or position ids."""
    torch.manual_seed(3)
    model = PredictReconstruct(_config(), predictor_layers=1, lambda_mode="fixed").eval()
    batch = _batch(4)
    keep = batch["context"] | (torch.rand(batch["context"].shape) < 0.2)  # holes between kept tokens
    keep[:, 0] = True
    inputs = (dict(inputs_embeds=model.encoder.embeddings.word_embeddings(batch["input_ids"])) if embeds
              else dict(input_ids=batch["input_ids"]))
    got = encode_subset(model.encoder, keep, **inputs)
    additive = torch.where(keep[:, None, None, :], 0.0, torch.finfo(torch.float32).min)
    additive = additive.expand(-1, 1, keep.shape[1], -1)
    expected = model.encoder(**inputs, attention_mask=additive).last_hidden_state
    torch.testing.assert_close(got[keep], expected[keep], rtol=1e-5, atol=1e-5)
    assert torch.all(got[~keep] == 0)


def test_mlm_loss_equals_full_vocabulary_head_over_every_position():
    """The head runs on masked positions only (speed); the loss must equal eq. 6 computed the long way."""
    torch.manual_seed(1)
    model = PredictReconstruct(_config(), predictor_layers=1, predictor_hidden=16, lambda_mode="mlm_only")
    batch = _batch()
    out = model(**batch)
    z = model.encode(batch["input_ids"], batch["attention_mask"])
    logits = model.regressor(z)  # (B, L, V) at every position
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    assert (batch["labels"] != -100).sum() > 1
    torch.testing.assert_close(out["mlm_loss"], expected.detach(), rtol=1e-5, atol=1e-6)
    none_masked = dict(batch, labels=torch.full_like(batch["labels"], -100))
    empty = model(**none_masked)["loss"]
    assert empty.item() == 0.0 and empty.requires_grad


def test_learnable_lambda_gradient_follows_the_loss_gap():
    torch.manual_seed(1)
    model = PredictReconstruct(_config(), predictor_layers=1, lambda_mode="learnable")
    out = model(**_batch(1))
    assert out["lambda"] == pytest.approx(0.5)
    out["loss"].backward()
    # dL/dw = σ'(0)·(L_JEPA − L_MLM) = 0.25·gap: λ moves toward the smaller loss
    assert model.objective.w.grad.item() == pytest.approx(0.25 * (out["jepa_loss"] - out["mlm_loss"]).item(), rel=1e-5)


def test_a_checkpoint_with_w_at_the_top_loads_into_the_term():
    """Before the loss became a term, learnable λ's w was the model's ``w``; such a state dict still loads it."""
    torch.manual_seed(1)
    model = PredictReconstruct(_config(), predictor_layers=1, lambda_mode="learnable")
    old = {("w" if k == "objective.w" else k): v for k, v in model.state_dict().items()}
    old["w"] = torch.tensor(1.25)
    model.load_state_dict(old)
    assert model.objective.w.item() == 1.25
    assert model.objective.current_lambda().item() == pytest.approx(torch.sigmoid(torch.tensor(1.25)).item())


def test_modes_schedule_control_init_and_errors():
    torch.manual_seed(2)
    hybrid = PredictReconstruct(_config(), lambda_mode="schedule", lambda_start=0.1, lambda_end=0.9)
    torch.manual_seed(2)
    control = PredictReconstruct(_config(), lambda_mode="mlm_only")
    for a, b in zip(hybrid.encoder.parameters(), control.encoder.parameters()):
        assert torch.equal(a, b)  # the control starts from the same encoder
    assert control.target_encoder is None and control.predictor is None
    assert hybrid.objective.current_lambda(0.0).item() == pytest.approx(0.1)
    assert hybrid.objective.current_lambda(0.5).item() == pytest.approx(0.5)
    assert hybrid.objective.current_lambda(2.0).item() == pytest.approx(0.9)
    out = control(**_batch(2))
    assert out["jepa_loss"] is None and torch.equal(out["loss"].detach(), out["mlm_loss"])
    with pytest.raises(ValueError, match="lambda_mode"):
        PredictReconstruct(_config(), lambda_mode="adaptive")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PredictReconstruct(_config(), lbd=1.5)


def test_ema_update_and_momentum_schedule():
    torch.manual_seed(3)
    model = PredictReconstruct(_config(), predictor_layers=1)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target_encoder.parameters()]
    ema = EMATarget.of(model.target_encoder, "encoder", start=0.9, end=0.9)  # the one both trainers use
    ema.update(model, step=3, total=10)
    for old, new, online in zip(before, model.target_encoder.parameters(), model.encoder.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * online)
    assert not ema.owned  # the target encoder is saved with the model's weights, not as ema_target.pt
    copy = EMATarget.copy_of(model.encoder, start=0.5, end=0.5)  # LLM-JEPA's target: a copy of the trainable weights
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    copy.update(model.encoder, step=0, total=10)
    for name, p in model.encoder.named_parameters():
        torch.testing.assert_close(copy.params[name], p.detach() - 0.5)
    assert ema_momentum(0, 100) == 0.996 and ema_momentum(50, 100) == pytest.approx(0.998)
    assert ema_momentum(100, 100) == 1.0 and ema_momentum(500, 100) == 1.0


def test_collapse_monitors():
    collapsed = torch.ones(50, 16) + 1e-6 * torch.randn(50, 16)
    spread = torch.randn(2000, 16)
    assert collapse_monitors(collapsed)["embedding_std"] < 1e-4
    assert collapse_monitors(spread)["embedding_std_ratio"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("mode", ["fixed", "schedule", "learnable", "mlm_only"])
@pytest.mark.parametrize("case", ["normal", "no_usable_row", "no_masked_token"])
def test_every_trainable_parameter_gets_a_gradient(mode, case):
    """DDP (find_unused_parameters=False) requires it in every step, even in degenerate batches."""
    model = PredictReconstruct(_config(), predictor_layers=1, predictor_hidden=16, lambda_mode=mode)
    batch = _batch()
    if case == "no_usable_row":
        batch["usable"] = torch.zeros_like(batch["usable"])
    if case == "no_masked_token":
        batch["labels"] = torch.full_like(batch["labels"], -100)
    model(**batch)["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert model.target_encoder is None or all(p.grad is None for p in model.target_encoder.parameters())
