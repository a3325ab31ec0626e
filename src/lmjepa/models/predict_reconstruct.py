"""The Predict-and-Reconstruct networks (P&R §3): a shared encoder f_θ trained by MLM and by JEPA
latent prediction, built from Hugging Face ``BertModel`` blocks, randomly initialised. The loss,
λ modes and EMA schedule are in ``lmjepa.objectives.predict_reconstruct``.

    z      = f_θ(x̃ | context)           eq. 1: BERT-masked input, attention limited to the context block
    ĥ      = g_φ(z, context, target)      eq. 2: narrower transformer; mask tokens at target positions
    h      = LN(f̄_θ(x))  (no grad)        eq. 3: EMA target encoder on the clean input, LayerNorm without affine
    z_full = f_θ(x̃)                       eq. 4: full BERT-masked sequence
    h_ψ(z) = W2·LN(GELU(W1·z))            eq. 9: the token regressor of the MLM head

The encoder is built first from the seed, so the hybrid and the MLM-only control start from
identical encoder weights. The loss is the term ``objectives.predict_reconstruct.PredictReconstructLoss`` (eq. 7,
λ and its modes), held as the submodule ``objective``; the EMA update of the target encoder is
``training.monitoring.EMATarget`` (eq. 8), the one both trainers use.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

from ..objectives.predict_reconstruct import PredictReconstructLoss, latent_prediction_loss, mlm_loss


class TokenRegressor(nn.Module):
    """h_ψ(z) = W2·LN(GELU(W1·z)), W1: D×D, W2: D×V (P&R eq. 9). ``(B, L, D)`` → ``(B, L, V)``."""

    def __init__(self, hidden: int, vocab: int):
        super().__init__()
        self.w1 = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.w2 = nn.Linear(hidden, vocab)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w2(self.norm(F.gelu(self.w1(z))))


class PredictReconstruct(nn.Module):
    """Encoder + predictor + EMA target encoder + token regressor, and the loss term (``objective``: λ).

    Args:
        encoder_config: ``BertConfig`` of f_θ (its ``vocab_size`` is the tokenizer's).
        predictor_layers / predictor_hidden / predictor_heads: size of g_φ (narrower than f_θ).
        lambda_mode: one of ``LAMBDA_MODES``; ``lbd`` is λ for ``fixed``; ``lambda_start`` /
            ``lambda_end`` the ends of ``schedule``.
    Raises ValueError for an unknown λ mode or a λ outside [0, 1].
    """

    def __init__(self, encoder_config: BertConfig, predictor_layers: int = 2, predictor_hidden: int | None = None,
                 predictor_heads: int | None = None, lambda_mode: str = "fixed", lbd: float = 0.5,
                 lambda_start: float = 0.1, lambda_end: float = 0.9):
        super().__init__()
        objective = PredictReconstructLoss(lambda_mode, lbd, lambda_start, lambda_end)  # checks λ before any init
        self.encoder = BertModel(encoder_config, add_pooling_layer=False)  # first: same init for every mode
        hidden = encoder_config.hidden_size
        self.regressor = TokenRegressor(hidden, encoder_config.vocab_size)
        self.objective = objective
        self.register_load_state_dict_pre_hook(_learnable_w_moved)
        if not objective.uses_jepa:
            self.target_encoder = self.predictor = None
            return
        width = predictor_hidden or hidden // 2
        heads = predictor_heads or max(1, width // 64)
        self.predictor_config = BertConfig(
            vocab_size=1, hidden_size=width, num_hidden_layers=predictor_layers, num_attention_heads=heads,
            intermediate_size=4 * width, max_position_embeddings=encoder_config.max_position_embeddings,
            hidden_dropout_prob=encoder_config.hidden_dropout_prob,
            attention_probs_dropout_prob=encoder_config.attention_probs_dropout_prob)
        self.predictor_in = nn.Linear(hidden, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.predictor = BertModel(self.predictor_config, add_pooling_layer=False)
        # g_φ reads inputs_embeds: its (1-row) word embedding never gets a gradient. Frozen, so that
        # DDP, which requires every trainable parameter to take part in every step, accepts the model.
        self.predictor.embeddings.word_embeddings.requires_grad_(False)
        self.predictor_out = nn.Linear(width, hidden)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)

    def _jepa_parameters(self):
        for part in (self.predictor_in, self.predictor, self.predictor_out):
            yield from (p for p in part.parameters() if p.requires_grad)
        yield self.mask_token

    # --- forward ------------------------------------------------------------------------------------

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states of f_θ, ``(B, L, D)`` — the representation probes and geometry read."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def jepa_loss(self, masked_ids, clean_ids, attention_mask, context, targets, usable) -> torch.Tensor:
        """L_JEPA (eq. 5). ``context`` (B, L) bool, ``targets`` (B, M, L) bool, ``usable`` (B,) bool."""
        keep = usable.nonzero().flatten()
        if len(keep) == 0:  # zero, but through every JEPA parameter (DDP expects each one in every step)
            return sum(p.sum() for p in self._jepa_parameters()) * 0.0
        masked_ids, clean_ids, attention_mask = masked_ids[keep], clean_ids[keep], attention_mask[keep]
        context, targets = context[keep], targets[keep]
        visible = context | _edge_tokens(attention_mask)  # the context block plus [CLS] and [SEP]
        z = encode_subset(self.encoder, visible, input_ids=masked_ids)  # eq. 1
        with torch.no_grad():
            h = self.target_encoder(input_ids=clean_ids, attention_mask=attention_mask).last_hidden_state
            h = F.layer_norm(h, h.shape[-1:])  # eq. 3, no affine
        rows, num_targets, length = targets.shape
        z_in = self.predictor_in(z).unsqueeze(1).expand(-1, num_targets, -1, -1)  # (B, M, L, Dp)
        mask = targets.unsqueeze(-1)
        embeds = torch.where(mask, self.mask_token.to(z_in.dtype), z_in).reshape(rows * num_targets, length, -1)
        attend = (visible.unsqueeze(1) | targets).reshape(rows * num_targets, length)
        predicted = self.predictor_out(encode_subset(self.predictor, attend, inputs_embeds=embeds))
        flat_targets = targets.reshape(rows * num_targets, length)
        h_rep = h.unsqueeze(1).expand(-1, num_targets, -1, -1).reshape(rows * num_targets, length, -1)
        return latent_prediction_loss(predicted[flat_targets], h_rep[flat_targets])  # eq. 5: eq. 2 vs eq. 3

    def forward(self, input_ids, attention_mask, labels, clean_ids=None, context=None, targets=None, usable=None,
                progress: float = 0.0) -> dict:
        """Returns ``{"loss", "mlm_loss", "jepa_loss", "lambda"}`` (``PredictReconstructLoss``: the last three detached,
        for logging).

        ``input_ids``: BERT-masked x̃ (B, L); ``labels``: MLM targets, -100 elsewhere; ``clean_ids``: x;
        ``context``/``targets``/``usable``: ``lmjepa.data.block_masks.BlockMasks`` fields.
        """
        z_full = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # eq. 4
        selected = labels != -100  # eq. 6 sums over masked positions only: the vocabulary head runs there alone
        if selected.any():
            mlm = mlm_loss(self.regressor(z_full[selected]), labels[selected])
        else:  # no masked token in the batch: zero, still through the regressor (for DDP)
            mlm = self.regressor(z_full[:1, :1]).sum() * 0.0
        jepa = self.jepa_loss(input_ids, clean_ids, attention_mask, context, targets, usable) \
            if self.objective.uses_jepa else None
        return self.objective(mlm, jepa, progress)  # eq. 7


def _learnable_w_moved(module, state_dict, prefix, *args) -> None:
    """A checkpoint written before the loss became a term holds learnable λ's w as ``w``: now ``objective.w``."""
    if prefix + "w" in state_dict:
        state_dict[prefix + "objective.w"] = state_dict.pop(prefix + "w")


def encode_subset(bert: BertModel, keep: torch.Tensor, input_ids: torch.Tensor | None = None,
                  inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Encode only the tokens where ``keep`` (B, L) bool is True, each at its original position.

    The kept tokens of each row are moved to the front (order kept), given their original position ids
    and right-padded, so the model sees a plain right-padded batch: no 2-D mask with holes, whose meaning
    changed between transformers releases (5.25.0 no longer matches the gathered computation; issue 32).
    Returns ``(B, L, D)`` float: the states at kept positions, zeros elsewhere (no caller reads them).
    Pass exactly one of ``input_ids`` (B, L) long or ``inputs_embeds`` (B, L, E) float.
    """
    rows, length = keep.shape
    counts = keep.sum(1)
    width = max(int(counts.max()), 1)
    # Stable order of kept positions first: sort by (not kept, position).
    order = torch.argsort((~keep).long() * length + torch.arange(length, device=keep.device), dim=1)[:, :width]
    attention = (torch.arange(width, device=keep.device)[None] < counts[:, None]).long()
    source = input_ids if input_ids is not None else inputs_embeds
    if source.dim() == 3:
        gathered = torch.gather(source, 1, order.unsqueeze(-1).expand(-1, -1, source.shape[-1]))
        out = bert(inputs_embeds=gathered, attention_mask=attention, position_ids=order).last_hidden_state
    else:
        gathered = torch.gather(source, 1, order)
        out = bert(input_ids=gathered, attention_mask=attention, position_ids=order).last_hidden_state
    full = out.new_zeros(rows, length, out.shape[-1])
    picked = attention.bool()
    full[torch.arange(rows, device=keep.device)[:, None].expand(-1, width)[picked], order[picked]] = out[picked]
    return full


def _edge_tokens(attention_mask: torch.Tensor) -> torch.Tensor:
    """True at the first and last real token of each row ([CLS] and [SEP] in BERT layouts)."""
    edges = torch.zeros_like(attention_mask, dtype=torch.bool)
    edges[:, 0] = True
    last = attention_mask.sum(1) - 1
    edges[torch.arange(len(last)), last] = True
    return edges & attention_mask.bool()
