"""Frozen embeddings of token sequences under four poolings, from any Hugging Face model.

Poolings over the non-padding tokens of one sequence, hidden states ``h_1..h_T`` at the chosen
layer (``(T, D)``):

* ``last``: ``h_T`` — for a causal LM this is LLM-JEPA's Enc token (the view's last token).
* ``mean``: ``(1/T) Σ h_t`` (Predict and Reconstruct §3.4).
* ``max``: element-wise maximum over t.
* ``attention``: parameter-free dot-product attention with the mean as query,
  ``w = softmax_t(⟨h_t, q⟩ / √D)``, ``q = mean``, pooled ``Σ w_t h_t``. Nothing is trained or
  drawn at random (unlike the untrained random "attention" pooler of the P&R code): tokens
  whose states agree with the sequence's overall direction get more weight.

``layer`` indexes ``hidden_states`` as Hugging Face returns them: 0 = token embeddings,
−1 = the last layer (after the final norm for Llama-style models, as LLM-JEPA's Enc reads it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError

POOLINGS = ("last", "mean", "max", "attention")


def pool(hidden: torch.Tensor, mask: torch.Tensor, poolings: Sequence[str] = POOLINGS) -> dict[str, torch.Tensor]:
    """Pool ``hidden`` ``(B, L, D)`` float over ``mask`` ``(B, L)`` (1 = real token, right padding).

    Returns ``{pooling: (B, D)}``. Raises ValueError for an unknown pooling or an empty row.
    """
    unknown = set(poolings) - set(POOLINGS)
    if unknown:
        raise ValueError(f"unknown pooling(s) {sorted(unknown)}; choose from {POOLINGS}")
    mask = mask.to(hidden.dtype)
    lengths = mask.sum(dim=1)
    if (lengths == 0).any():
        raise ValueError("a sequence has no non-padding token")
    out: dict[str, torch.Tensor] = {}
    mean = (hidden * mask[..., None]).sum(dim=1) / lengths[:, None]
    for name in poolings:
        if name == "last":
            last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(dim=1)
            out[name] = hidden[torch.arange(hidden.shape[0]), last]
        elif name == "mean":
            out[name] = mean
        elif name == "max":
            out[name] = hidden.masked_fill(mask[..., None] == 0, float("-inf")).amax(dim=1)
        else:
            scores = (hidden @ mean[:, :, None]).squeeze(-1) / math.sqrt(hidden.shape[-1])
            weights = scores.masked_fill(mask == 0, float("-inf")).softmax(dim=1)
            out[name] = (weights[..., None] * hidden).sum(dim=1)
    return out


@torch.no_grad()
def embed_sequences(
    model,
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    *,
    layer: int = -1,
    batch_size: int = 32,
    poolings: Sequence[str] = POOLINGS,
    desc: str = "embedding",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Embed token-id sequences: ``{pooling: (N, D) float32}`` in the input order.

    Runs the model's backbone (``model.base_model``: no LM head) in eval mode, batches sorted by
    length with right padding, and reads ``hidden_states[layer]``.
    Raises ValueError on an empty sequence or a layer the model does not have.
    """
    if any(len(s) == 0 for s in sequences):
        raise ValueError("cannot embed an empty sequence")
    backbone = getattr(model, "base_model", model)
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    pooled: dict[str, list[torch.Tensor]] = {name: [] for name in poolings}
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"):
            batch = [list(sequences[i]) for i in order[start : start + batch_size]]
            width = max(len(s) for s in batch)
            ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in batch], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=device)
            hidden_states = backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            if not -len(hidden_states) <= layer < len(hidden_states):
                raise ConfigError(f"layer {layer} out of range: the model returns {len(hidden_states)} hidden states")
            for name, value in pool(hidden_states[layer].float(), mask, poolings).items():
                pooled[name].append(value.cpu())
    finally:
        backbone.train(was_training)
    inverse = np.argsort(order)
    return {name: torch.cat(chunks).numpy()[inverse] for name, chunks in pooled.items()}
