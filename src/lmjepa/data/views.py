"""From an Example to token ids: the full sequence with NTP labels, and the two JEPA views.

The chat template is applied once per example, to the whole conversation. Every other piece
is a token span of that one tokenisation, located by character offsets — no per-model offsets:

* full sequence: ``template(system, user, assistant)``; NTP labels are -100 on everything up to
  the assistant content, and train the assistant content plus the end-of-turn token that follows
  it (the model must learn to stop). Tokens after that (ChatML's trailing newline) are -100.
* Text view: the user content tokens followed by the k predictor tokens.
  Enc(Text) is read at the last predictor token (k > 0) or the last user content token (k = 0).
* Code view: the assistant content tokens. Enc(Code) is read at its last token.
* ``spans``: where the user content and the assistant content lie in the full sequence,
  ``[user start, user end, answer start, answer end)`` — what trajectory terms (STP, curvature) read.

``view_format`` (config ``jepa.view_format``): ``content`` (above) or ``chat`` (the default), the official
LLM-JEPA code's views: Text = the chat template applied to the user message alone, with the k predictor
tokens appended to its content in descending order ``<|predictor_k|>…<|predictor_1|>``; Code = the chat
template applied to the assistant message alone — each with whatever default system prompt the template
injects. Enc is read at the last predictor token (k = 0: the last user content token) and at the last
assistant content token; each view row ends there (causal attention: later tokens cannot change Enc).

The official code's training conditions, each off by default (``ntp_labels``): ``train_prompt`` (every token
of the rendered sequence is an NTP label, as the official collator rebuilds labels from the input ids) and
``train_eos=False`` (pad = eos: every token equal to the pad token, the end-of-turn token, is ignored
wherever it stands; the model is never taught to stop). Changed under issue 33: before, ``train_prompt``
stopped at the answer's end and ``train_eos=False`` ignored only the end-of-turn token after the answer,
so the audit's official-conditions cells still trained the prompt's end-of-turn tokens.

Truncation policy (``max_length``): the full sequence is cut on the right to ``max_length``
tokens; the Text view keeps its first ``max_length - k`` content tokens then the predictor
tokens; the Code view keeps its first ``max_length`` tokens. Every truncated example is counted.
An example whose cut leaves no trained label is dropped and counted (never silently).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from .jsonl import DataError, Example

IGNORE_INDEX = -100


@dataclass
class EncodedExample:
    input_ids: list[int]  # full templated sequence
    labels: list[int]  # NTP labels, -100 where not trained
    text_ids: list[int]  # Text view + predictor tokens
    code_ids: list[int]  # Code view
    prompt_len: int  # tokens before the answer (system + user + template): the shared_prefix Text view
    spans: tuple[int, int, int, int] = (0, 0, 0, 0)  # [user start, end), [answer start, end) in input_ids
    truncated: bool = False


def _token_span(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Indices [first, last) of the tokens overlapping characters [start, end)."""
    inside = [i for i, (a, b) in enumerate(offsets) if a < end and b > start and b > a]
    if not inside:
        raise DataError(f"no token covers characters {start}..{end}")
    return inside[0], inside[-1] + 1


def _render(tokenizer, messages: list[dict], source: str) -> tuple[str, list[int]]:
    """The chat template's output and where each message's content starts in it.

    Each content is located by rendering the conversation once more with a unique placeholder in its
    place (so a content such as ``a`` is never found inside ``assistant`` or the system prompt); the
    real output must be the placeholders' output with each content put back. Raises DataError naming
    ``source`` if the template does not insert the contents verbatim.
    """
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
    marked = tokenizer.apply_chat_template([{**m, "content": mark} for m, mark in zip(messages, marks)],
                                           tokenize=False)
    starts, rebuilt, cursor = [], "", 0
    for message, mark in zip(messages, marks):
        at = marked.find(mark, cursor)
        if at < 0:
            break
        rebuilt += marked[cursor:at]
        starts.append(len(rebuilt))
        rebuilt += message["content"]
        cursor = at + len(mark)
    if len(starts) != len(messages) or rebuilt + marked[cursor:] != rendered:
        raise DataError(f"{source}: chat template output does not contain the turn content verbatim")
    return rendered, starts


def _chat_view(tokenizer, role: str, content: str, suffix: str, source: str) -> list[int]:
    """The official view: the chat template on one message, cut right after ``content`` + ``suffix``."""
    rendered, (at,) = _render(tokenizer, [{"role": role, "content": content + suffix}], source)
    encoding = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    _, end = _token_span(encoding["offset_mapping"], at, at + len(content) + len(suffix))
    return encoding["input_ids"][:end]


def ntp_labels(ids: list[int], answer: tuple[int, int], pad_id: int | None, train_prompt: bool = False,
               train_eos: bool = True) -> list[int]:
    """NTP labels of one rendered sequence ``ids`` whose answer is the token span ``answer`` = [start, end).

    Default: the answer and the end-of-turn token right after it are trained, everything else is -100.
    ``train_prompt``: every token of the rendered sequence is a label (prompt, template tokens and the
    trailing ones after the answer), as the official code's ``DataCollatorForLanguageModeling(mlm=False)``
    rebuilds the labels from the input ids. ``train_eos=False``: every token equal to ``pad_id`` (the
    official code sets pad = eos, so the end-of-turn token) is -100 wherever it stands, as that collator
    does — so the model is never taught to stop. Both together are the official labels token for token
    (``benchmarks/official_check``). Raises ValueError if ``train_eos=False`` and ``pad_id`` is None.
    """
    if train_prompt:
        labels = list(ids)
    else:
        trained_end = min(answer[1] + 1, len(ids))
        labels = [IGNORE_INDEX] * answer[0] + ids[answer[0]:trained_end] + [IGNORE_INDEX] * (len(ids) - trained_end)
    if not train_eos:
        if pad_id is None:
            raise ValueError("train_eos=False ignores every pad-equal token, but the tokenizer has no pad token")
        labels = [IGNORE_INDEX if token == pad_id else label for token, label in zip(ids, labels)]
    return labels


def encode_example(
    example: Example,
    tokenizer: PreTrainedTokenizerBase,
    predictor_ids: list[int],
    max_length: int = 512,
    view_format: str = "chat",
    train_prompt: bool = False,
    train_eos: bool = True,
) -> EncodedExample:
    """Tokenise ``example`` once through the chat template and cut out its views (module docstring).

    Raises DataError if the template output does not contain the turns verbatim
    (the spans could not be located) — naming the example's source.
    """
    rendered, starts = _render(tokenizer, example.messages(), example.source)
    encoding = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    user_at, answer_at = starts[-2:]
    user = _token_span(offsets, user_at, user_at + len(example.text))
    answer = _token_span(offsets, answer_at, answer_at + len(example.code))

    labels = ntp_labels(ids, answer, tokenizer.pad_token_id, train_prompt, train_eos)

    k = len(predictor_ids)
    if view_format == "chat":
        names = tokenizer.convert_ids_to_tokens(list(reversed(predictor_ids)))
        text_ids = _chat_view(tokenizer, "user", example.text, "".join(names), example.source)[: -k or None]
        code_ids = _chat_view(tokenizer, "assistant", example.code, "", example.source)
        predictor_ids = list(reversed(predictor_ids))  # descending: Enc(Text) at <|predictor_1|>
    else:
        text_ids = ids[user[0] : user[1]]
        code_ids = ids[answer[0] : answer[1]]
    truncated = len(ids) > max_length or len(text_ids) + k > max_length or len(code_ids) > max_length
    return EncodedExample(
        input_ids=ids[:max_length],
        labels=labels[:max_length],
        text_ids=text_ids[: max_length - k] + list(predictor_ids),
        code_ids=code_ids[:max_length],
        prompt_len=min(answer[0], max_length),
        spans=tuple(min(i, max_length) for i in (*user, *answer)),
        truncated=truncated,
    )


def encode_dataset(
    examples: list[Example],
    tokenizer: PreTrainedTokenizerBase,
    predictor_ids: list[int],
    max_length: int = 512,
    **options,
) -> tuple[list[dict], Counter]:
    """Encode every example (``options``: ``view_format``, ``train_prompt``, ``train_eos`` of
    ``encode_example``); return the feature dicts and counts (``examples``, ``truncated``, ``dropped``)."""
    features, counts = [], Counter(examples=len(examples), truncated=0, dropped=0)
    for example in examples:
        encoded = encode_example(example, tokenizer, predictor_ids, max_length, **options)
        counts["truncated"] += encoded.truncated
        if all(label == IGNORE_INDEX for label in encoded.labels[1:]):
            counts["dropped"] += 1  # the cut left nothing to train on
            continue
        features.append(
            {
                "input_ids": encoded.input_ids,
                "labels": encoded.labels,
                "text_ids": encoded.text_ids,
                "code_ids": encoded.code_ids,
                "prompt_len": encoded.prompt_len,
                "spans": list(encoded.spans),
            }
        )
    return features, counts
