"""Each view mode — its batching and its forward — in one module (config ``jepa.views``).

Every batch holds the plain NTP rows ``input_ids, attention_mask, labels`` (B, L), right padded to the
longest row (no fixed 512 padding). Depending on the mode it adds:

``separate`` (reference semantics): Text rows and Code rows as their own sequences,
    ``view_input_ids, view_attention_mask`` (2B, V) — rows [Text_1..Text_B, Code_1..Code_B] — and
    ``view_enc_index`` (2B,). The trainer runs the full rows and the view rows as separate forwards.
    With ``share_prefix`` it adds ``view_prefix_len`` (scalar long): the number of leading tokens every
    view row has in common (chat views: the template and its system prompt; capped so that every Enc
    token lies after it). The forward runs that prefix once and the 2B rows attend to its cached keys
    and values — exactly the states each row would compute for it alone (causal attention).

``packed`` (the paper's two-block form): Text + predictors and Code as two blocks with a block-causal
    mask (no attention across blocks) and position ids restarting at 0 in each block, so each block
    sees exactly what it would see alone. The full sequence rides in the same row as a third block:
    ``[Text + predictors | Code | full sequence]``, full sequence last so that only its logits are
    computed. That is exactly the paper's "full-sequence row beside the [Text | Code] row", in one
    forward pass, without LM-head work on view tokens.

``shared_prefix``: ONE row per example, ``[Code | predictors | full sequence]``, laid out so the full
    sequence is last (its logits are the row's last L positions). The full sequence is causal as in
    plain NTP; the predictor tokens attend to the prompt (system + template + user, i.e. everything
    before the answer) and to themselves, at positions continuing the prompt; the Code block attends
    only to itself, from position 0. So its Text view is the whole templated prompt — including the
    system prompt and template tokens — unlike ``separate``/``packed`` (user content only). With
    k = 0, Enc(Text) is the last prompt token of the full sequence.

Both one-row modes give ``pack_input_ids``, ``pack_position_ids`` (B, S) long, ``pack_allowed``
(B, S, S) bool (query may attend to key) and ``pack_enc_index`` (B, 2) [Enc(Text), Enc(Code)]; the
full sequence always fills the row's last L positions (L = the width of ``input_ids``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .masks import PAD_BLOCK, block_causal, positions_in_blocks, to_float_mask
from .views import IGNORE_INDEX

VIEW_MODES = ("separate", "packed", "shared_prefix")
MULTIVIEW = "multiview"  # {"views": [...]} data, its own collator (data/multiview.py)


def _pad(rows: list[list[int]], value: int, width: int | None = None) -> torch.Tensor:
    width = width or max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def common_prefix_len(rows: list[list[int]]) -> int:
    """The number of leading tokens all ``rows`` share, at most the shortest row's length − 1 (so every
    row keeps its last token — its Enc token — after the prefix)."""
    limit = min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return max(n, 0)


def _separate(features: list[dict], pad: int, share_prefix: bool = False) -> dict[str, torch.Tensor]:
    views = [f["text_ids"] for f in features] + [f["code_ids"] for f in features]
    batch = {
        "view_input_ids": _pad(views, pad),
        "view_attention_mask": _pad([[1] * len(r) for r in views], 0),
        "view_enc_index": torch.tensor([len(r) - 1 for r in views], dtype=torch.long),
    }
    if share_prefix:
        batch["view_prefix_len"] = torch.tensor(common_prefix_len(views), dtype=torch.long)
    return batch


def _packed(features: list[dict], pad: int) -> dict[str, torch.Tensor]:
    """One row per example: [Text + predictors | Code | full sequence], each block padded to the batch max."""
    widths = [max(len(f[key]) for f in features) for key in ("text_ids", "code_ids", "input_ids")]
    rows, blocks, enc = [], [], []
    for f in features:
        row, block = [], []
        for block_id, (key, width) in enumerate(zip(("text_ids", "code_ids", "input_ids"), widths)):
            ids = f[key]
            row += ids + [pad] * (width - len(ids))
            block += [block_id] * len(ids) + [PAD_BLOCK] * (width - len(ids))
        rows.append(row)
        blocks.append(block)
        enc.append([len(f["text_ids"]) - 1, widths[0] + len(f["code_ids"]) - 1])
    block_ids = torch.tensor(blocks, dtype=torch.long)
    return {
        "pack_input_ids": torch.tensor(rows, dtype=torch.long),
        "pack_position_ids": positions_in_blocks(block_ids),
        "pack_allowed": block_causal(block_ids),
        "pack_enc_index": torch.tensor(enc, dtype=torch.long),
    }


def _shared_prefix(features: list[dict], pad: int, k: int) -> dict[str, torch.Tensor]:
    code_width = max(len(f["code_ids"]) for f in features)
    full_width = max(len(f["input_ids"]) for f in features)
    width = code_width + k + full_width
    pred_start, full_start = code_width, code_width + k
    ids = torch.full((len(features), width), pad, dtype=torch.long)
    positions = torch.zeros_like(ids)
    allowed = torch.zeros(len(features), width, width, dtype=torch.bool)
    enc = []
    for row, f in enumerate(features):
        c, n, p = len(f["code_ids"]), len(f["input_ids"]), f["prompt_len"]
        predictors = f["text_ids"][len(f["text_ids"]) - k :] if k else []
        ids[row, :c] = torch.tensor(f["code_ids"])
        ids[row, pred_start:full_start] = torch.tensor(predictors, dtype=torch.long)
        ids[row, full_start : full_start + n] = torch.tensor(f["input_ids"])
        positions[row, :c] = torch.arange(c)
        positions[row, pred_start:full_start] = p + torch.arange(k)
        positions[row, full_start : full_start + n] = torch.arange(n)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed[row, :c, :c] = causal[:c, :c]  # Code: causal within itself
        allowed[row, full_start : full_start + n, full_start : full_start + n] = causal[:n, :n]  # plain NTP
        allowed[row, pred_start:full_start, pred_start:full_start] = causal[:k, :k]  # predictors: themselves
        allowed[row, pred_start:full_start, full_start : full_start + p] = True  # ... and the prompt
        text_enc = full_start - 1 if k else full_start + p - 1
        enc.append([text_enc, c - 1])
    return {
        "pack_input_ids": ids,
        "pack_position_ids": positions,
        "pack_allowed": allowed,
        "pack_enc_index": torch.tensor(enc, dtype=torch.long),
    }


@dataclass(frozen=True)
class ViewMode:
    """One view mode (config ``jepa.views``), chosen once by name (``view_mode``): how its batches carry the views
    (``collate(features, pad, k, share_prefix) -> dict``; None: ``multiview`` has its own collator) and how its
    forward reads them (``one_row``: the views ride in the full sequence's row; ``multiview``: consecutive views
    of one row are the pairs). ``text_is_prompt``: its Text view is the whole templated prompt. ``cost``: the
    measured step cost against NTP (``benchmarks/step_cost.py``)."""

    name: str
    collate: Callable[[list[dict], int, int, bool], dict] | None
    one_row: bool = False
    text_is_prompt: bool = False
    multiview: bool = False
    cost: str = ""


VIEW_MODE_REGISTRY: dict[str, ViewMode] = {m.name: m for m in (
    ViewMode("separate", lambda f, pad, k, share: _separate(f, pad, share),
             cost="CPU, chat views with the shared prefix: 1.78× NTP; GPU (tiny model): 3.05×"),
    ViewMode("packed", lambda f, pad, k, share: _packed(f, pad), one_row=True, cost="GPU (tiny model): 1.01× NTP"),
    ViewMode("shared_prefix", lambda f, pad, k, share: _shared_prefix(f, pad, k), one_row=True, text_is_prompt=True,
             cost="one row per example; its Text view is the whole prompt (a different view definition)"),
    ViewMode(MULTIVIEW, None, multiview=True, cost="one forward over every view row"),
)}
AUTO = "auto"


def view_mode(name: str) -> ViewMode:
    """The registered view mode ``name``. Raises ValueError naming the known modes."""
    if name not in VIEW_MODE_REGISTRY:
        raise ValueError(f"unknown view mode {name!r}; choose one of {list(VIEW_MODE_REGISTRY)}")
    return VIEW_MODE_REGISTRY[name]


def resolve_views(requested: str, device: str, attn_implementation: str | None = None) -> tuple[str, str]:
    """``(mode, why)``: ``requested`` itself, or for ``auto`` the fastest mode that is exact here (issue 35),
    from the measured costs: on CUDA with an attention that takes a 4-D block mask (not flash-attention-2),
    ``packed`` (1.01× NTP against separate's 3.05× on a tiny model); else ``separate`` with the shared view
    prefix (CPU chat views: 1.78× NTP; packed on CPU is slower, and ``shared_prefix`` changes the view
    definition, so it is never chosen for you). Raises ValueError on an unknown mode."""
    if requested != AUTO:
        view_mode(requested)
        return requested, "set in the config"
    if device == "cuda" and attn_implementation != "flash_attention_2":
        return "packed", f"auto: CUDA, attention {attn_implementation or 'sdpa'} takes block masks; " \
                         + VIEW_MODE_REGISTRY["packed"].cost
    return "separate", f"auto: {device}" + (", flash-attention-2 takes no block mask" if device == "cuda" else "") \
        + "; " + VIEW_MODE_REGISTRY["separate"].cost


@dataclass
class JEPACollator:
    """Collate encoded examples (``lmjepa.data.views.encode_dataset``) for a view mode.

    Args:
        pad_token_id: id used for padding (never attended to).
        views: ``separate``, ``packed`` or ``shared_prefix`` (see the module docstring).
        predictors: k, the number of predictor tokens at the end of each ``text_ids``
            (needed by ``shared_prefix``). Raises ValueError on an unknown mode.
        share_prefix: ``separate`` mode: add ``view_prefix_len`` (config ``jepa.shared_view_prefix``).
    Besides the mode's tensors, every batch has ``spans`` (B, 4) long: ``[user start, user end, answer
    start, answer end)`` in ``input_ids`` (for the trajectory terms).
    """

    pad_token_id: int
    views: str = "separate"
    predictors: int = 0
    share_prefix: bool = False

    def __post_init__(self):
        self.mode = view_mode(self.views)
        if self.mode.collate is None:
            raise ValueError(f"view mode {self.views!r} has its own collator (data/multiview.py)")

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        full = [f["input_ids"] for f in features]
        batch = {
            "input_ids": _pad(full, self.pad_token_id),
            "attention_mask": _pad([[1] * len(r) for r in full], 0),
            "labels": _pad([f["labels"] for f in features], IGNORE_INDEX),
        }
        if all("spans" in f for f in features):
            batch["spans"] = torch.tensor([f["spans"] for f in features], dtype=torch.long)
        batch.update(self.mode.collate(features, self.pad_token_id, self.predictors, self.share_prefix))
        return batch


# --- the forward of each view mode --------------------------------------------------------------------

VIEW_KEYS = ("view_", "pack_", "spans")  # batch keys that are not model inputs


@dataclass
class ViewForward:
    """What one training forward gives the objective.

    ``outputs``: the model output on the full sequence (``.loss`` = L_NTP); ``hidden``: layer → the full
    sequence's hidden states (B, L, D) for the layers asked; ``pred`` / ``target``: Pred(Enc(Text)) and
    Enc(Code), (B, D), or None when the views were not asked for.
    """

    outputs: object
    hidden: dict
    pred: torch.Tensor | None = None
    target: torch.Tensor | None = None


def gather_enc(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """One hidden state per row: ``hidden`` (N, L, D), ``index`` (N,) long → (N, D)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def _inner(model):
    """The transformers model inside DDP and peft wrappers."""
    inner = getattr(model, "module", model)  # DDP
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner  # peft


@functools.lru_cache(maxsize=None)
def _cache_argument_of(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _cache_argument(model) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers ≥ 5.2x) or ``past_key_values``
    (read once per model class, not on every step)."""
    return _cache_argument_of(type(_inner(model)))


def _checkpointing(model) -> bool:
    inner = _inner(model)
    if "is_activation_checkpointing" in dir(type(inner)):  # the name since transformers 5.2x
        return bool(inner.is_activation_checkpointing)
    return bool(getattr(inner, "is_gradient_checkpointing", False))


def encode_rows(model, input_ids, attention_mask, enc_index, prefix_len: int = 0, **kwargs) -> torch.Tensor:
    """Enc of each row: the last-layer hidden state at ``enc_index`` (N,), as (N, D). No LM-head work.

    ``prefix_len`` > 0: the first ``prefix_len`` tokens are the same in every row (``view_prefix_len``);
    they run once, as one row, and the N rows continue from their cached keys and values (gradients flow
    into the prefix through the cache). Every ``enc_index`` must be ≥ ``prefix_len``. Ignored under
    gradient checkpointing (which drops caches) and with extra ``kwargs`` such as ``position_ids``.
    """
    if prefix_len > 0 and not kwargs and not _checkpointing(model):
        prefix = model(input_ids=input_ids[:1, :prefix_len], attention_mask=attention_mask[:1, :prefix_len],
                       use_cache=True, logits_to_keep=1)
        cache = prefix.cache if hasattr(prefix, "cache") else prefix.past_key_values
        cache.batch_repeat_interleave(input_ids.shape[0])
        outputs = model(input_ids=input_ids[:, prefix_len:], attention_mask=attention_mask, use_cache=True,
                        output_hidden_states=True, logits_to_keep=1, **{_cache_argument(model): cache})
        return gather_enc(outputs.hidden_states[-1], enc_index - prefix_len)
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, logits_to_keep=1,
                    **kwargs)
    return gather_enc(outputs.hidden_states[-1], enc_index)


def forward(mode: str, model, inputs: dict, views: dict, num_items_in_batch=None, layers: tuple[int, ...] = (),
            want_views: bool = True, target_encoder=None) -> ViewForward:
    """The training forward of view mode ``mode``: NTP outputs, hidden states at ``layers`` and the views.

    ``inputs``: ``input_ids``, ``attention_mask``, ``labels`` (B, L); ``views``: the mode's tensors from
    ``JEPACollator``. ``target_encoder(input_ids, attention_mask, enc_index, **kwargs) -> (N, D)``, when
    given, computes Enc(Code) instead of the live model (stop-gradient or EMA target): in ``separate``
    mode on the Code rows alone (the Text rows then run by themselves), in the one-row modes on the
    packed rows. Every forward goes through ``model`` itself (never a submodule), so DDP/peft
    wrappers keep working. Raises ValueError on an unknown mode.
    """
    spec = view_mode(mode)
    if spec.multiview:
        return _forward_multiview(model, inputs, views, num_items_in_batch, layers, want_views, target_encoder)
    want_hidden = bool(layers)
    if not spec.one_row or not want_views:
        outputs = model(**inputs, num_items_in_batch=num_items_in_batch, output_hidden_states=want_hidden)
        hidden = {layer: outputs.hidden_states[layer] for layer in layers}
        if not want_views:
            return ViewForward(outputs, hidden)
        ids, mask, index = views["view_input_ids"], views["view_attention_mask"], views["view_enc_index"]
        prefix = int(views.get("view_prefix_len", 0))
        if target_encoder is None:  # one forward over [Text rows; Code rows]
            pred, target = encode_rows(model, ids, mask, index, prefix).chunk(2)
        else:
            half = ids.shape[0] // 2
            pred = encode_rows(model, ids[:half], mask[:half], index[:half], prefix)
            target = target_encoder(ids[half:], mask[half:], index[half:])
        return ViewForward(outputs, hidden, pred, target)
    # packed / shared_prefix: one row per example; the full sequence is its last L tokens
    length = inputs["input_ids"].shape[1]
    dtype = next(model.parameters()).dtype
    row = dict(input_ids=views["pack_input_ids"], attention_mask=to_float_mask(views["pack_allowed"], dtype),
               position_ids=views["pack_position_ids"])
    outputs = model(**row, labels=inputs["labels"], num_items_in_batch=num_items_in_batch, logits_to_keep=length,
                    output_hidden_states=True)
    hidden = {layer: outputs.hidden_states[layer][:, -length:] for layer in layers}
    last = outputs.hidden_states[-1]
    enc = views["pack_enc_index"]
    pred, target = gather_enc(last, enc[:, 0]), gather_enc(last, enc[:, 1])
    if target_encoder is not None:
        target = target_encoder(row["input_ids"], row["attention_mask"], enc[:, 1], position_ids=row["position_ids"])
    return ViewForward(outputs, hidden, pred, target)


def _forward_multiview(model, inputs, views, num_items_in_batch, layers, want_views, target_encoder) -> ViewForward:
    """``multiview``: one forward over every view row; pred / target (P, D) for the P consecutive pairs."""
    outputs = model(**inputs, num_items_in_batch=num_items_in_batch, output_hidden_states=want_views or bool(layers))
    hidden = {layer: outputs.hidden_states[layer] for layer in layers}
    if not want_views:
        return ViewForward(outputs, hidden)
    rows, index = views["view_pair_rows"], views["view_pair_index"]
    last = outputs.hidden_states[-1]
    pred, target = last[rows[:, 0], index[:, 0]], last[rows[:, 1], index[:, 1]]
    if target_encoder is not None:
        target = target_encoder(inputs["input_ids"][rows[:, 1]], inputs["attention_mask"][rows[:, 1]], index[:, 1])
    return ViewForward(outputs, hidden, pred, target)
