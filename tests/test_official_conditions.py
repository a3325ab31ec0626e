"""The official LLM-JEPA code's views and training conditions, each a config key, each against a hand-built
or independently rendered expectation; ``lmjepa inspect`` shows them."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainingArguments

from lmjepa.cli.main import main
from lmjepa.data.jsonl import Example
from lmjepa.data.packing import JEPACollator, forward
from lmjepa.data.views import IGNORE_INDEX, encode_example
from lmjepa.models.loading import add_predictor_tokens
from lmjepa.training.config import JEPAConfig
from lmjepa.training.trainer import JEPATrainer

from conftest import tiny_llama

EXAMPLE = Example(text="lines with dog", code=".*dog.*", system="Convert natural language to regular expression.")


def _rendered_prefix(tokenizer, role: str, content: str) -> list[int]:
    """Independent: render the one message, cut the string right after the content, tokenise it."""
    rendered = tokenizer.apply_chat_template([{"role": role, "content": content}], tokenize=False)
    return tokenizer(rendered[: rendered.index(content) + len(content)], add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("k", [0, 1, 2])
def test_chat_views_are_the_messages_rendered_alone(tokenizer, k):
    ids = add_predictor_tokens(tokenizer, k) if k else []
    names = "".join(f"<|predictor_{i}|>" for i in range(k, 0, -1))  # descending, as the official code
    encoded = encode_example(EXAMPLE, tokenizer, ids, view_format="chat")
    assert encoded.text_ids == _rendered_prefix(tokenizer, "user", EXAMPLE.text + names)
    assert encoded.code_ids == _rendered_prefix(tokenizer, "assistant", EXAMPLE.code)
    system = "You are a helpful AI assistant named SmolLM"  # the template's injected default system prompt
    assert system in tokenizer.decode(encoded.text_ids) and system in tokenizer.decode(encoded.code_ids)
    content = encode_example(EXAMPLE, tokenizer, ids)
    assert content.input_ids == encoded.input_ids and content.labels == encoded.labels  # NTP rows unchanged


@pytest.mark.parametrize("mode", ["separate", "packed"])
def test_chat_views_embed_like_their_unpadded_forwards(tokenizer, mode):
    ids = add_predictor_tokens(tokenizer, 2)
    examples = [EXAMPLE, Example("three digits then a letter", "[0-9]{3}[a-z]", EXAMPLE.system)]
    features = [dict(vars(encode_example(e, tokenizer, ids, view_format="chat")), spans=[0, 0, 0, 0]) for e in examples]
    for f in features:
        del f["truncated"]
    model = tiny_llama(len(tokenizer)).eval()
    batch = JEPACollator(tokenizer.pad_token_id, mode, 2)(features)
    inputs = {k: batch.pop(k) for k in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        got = forward(mode, model, inputs, batch)
        alone = [[model(torch.tensor([f[key]]), output_hidden_states=True).hidden_states[-1][0, -1] for f in features]
                 for key in ("text_ids", "code_ids")]
    torch.testing.assert_close(got.pred, torch.stack(alone[0]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.target, torch.stack(alone[1]), rtol=1e-4, atol=1e-5)


def test_train_prompt_and_train_eos_labels_by_hand(tokenizer):
    ids = add_predictor_tokens(tokenizer, 1)
    default = encode_example(EXAMPLE, tokenizer, ids)
    answer_start = default.labels.index(next(l for l in default.labels if l != IGNORE_INDEX))
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.pad_token_id == eos  # SmolLM2: pad = eos = <|im_end|>, as in the official code
    trained = [i for i, l in enumerate(default.labels) if l != IGNORE_INDEX]
    assert default.input_ids[trained[-1]] == eos  # default: the answer and its end-of-turn token
    assert default.input_ids.count(eos) >= 3  # system, user and assistant turns each end with it
    official = encode_example(EXAMPLE, tokenizer, ids, train_prompt=True, train_eos=False)
    # The official collator (DataCollatorForLanguageModeling, mlm=False): labels = input ids, pad-equal -> -100.
    expected = [IGNORE_INDEX if t == eos else t for t in default.input_ids]
    assert official.labels == expected
    assert official.labels[-1] != IGNORE_INDEX  # ChatML's trailing newline after the last <|im_end|> is trained
    assert official.labels[: answer_start] != [IGNORE_INDEX] * answer_start  # the prompt is trained
    no_eos = encode_example(EXAMPLE, tokenizer, ids, train_eos=False)
    assert [i for i, l in enumerate(no_eos.labels) if l != IGNORE_INDEX] == list(range(answer_start, trained[-1]))
    prompt_only = encode_example(EXAMPLE, tokenizer, ids, train_prompt=True)
    assert prompt_only.labels == default.input_ids  # every token, the end-of-turn tokens included


@pytest.mark.parametrize("switch", ["train_prompt", "train_eos"])
def test_each_official_label_condition_acts_alone(tokenizer, switch):
    """Fails if either switch is made inert: each one alone changes the labels against the default."""
    ids = add_predictor_tokens(tokenizer, 1)
    default = encode_example(EXAMPLE, tokenizer, ids)
    value = {"train_prompt": True, "train_eos": False}[switch]
    changed = encode_example(EXAMPLE, tokenizer, ids, **{switch: value})
    assert changed.labels != default.labels and changed.input_ids == default.input_ids


def test_official_accumulation_scaling_divides_nothing(tokenizer):
    """The official RepresentationTrainer's micro-batch loss γ·lm_loss + λ·jepa_loss goes undivided by GA;
    lmjepa's divides both (NTP through num_items_in_batch = None here)."""
    ids = add_predictor_tokens(tokenizer, 1)
    features = [dict(vars(encode_example(EXAMPLE, tokenizer, ids)), spans=[0, 0, 0, 0])]
    del features[0]["truncated"]
    model = tiny_llama(len(tokenizer)).train()
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    args = TrainingArguments(output_dir="/tmp/lmjepa-acc", report_to=[], remove_unused_columns=False, disable_tqdm=True)
    losses = {}
    for scaling in ("lmjepa", "official"):
        trainer = JEPATrainer(model=model, args=args, jepa=JEPAConfig(accumulation_scaling=scaling, monitor=False))
        trainer.current_gradient_accumulation_steps = 2
        losses[scaling] = trainer.compute_loss(model, dict(batch)).item()
    ntp = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    enc = model(input_ids=batch["view_input_ids"], attention_mask=batch["view_attention_mask"],
                output_hidden_states=True).hidden_states[-1]
    pred, target = enc[torch.arange(2), batch["view_enc_index"]].chunk(2)
    jepa = (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
    assert losses["lmjepa"] == pytest.approx((ntp / 2 + jepa / 2).item(), rel=1e-5)
    assert losses["official"] == pytest.approx((ntp + jepa).item(), rel=1e-5)


def test_inspect_prints_what_training_sees(tmp_path, data_dir, capsys, base_tokenizer_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{name: {base_tokenizer_path}}}\ndata: {{data_dir: {data_dir}}}\n"
                      "jepa: {predictors: 2, view_format: chat}\n")
    assert main(["inspect", str(config), "--rows", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 2 and set(rows[0]) == {"full", "trained", "text_view", "enc_text_token", "code_view",
                                               "enc_code_token"}
    first = json.loads((data_dir / "llm-jepa" / "synth_train.jsonl").read_text().splitlines()[0])["messages"]
    answer = next(m["content"] for m in first if m["role"] == "assistant")
    assert rows[0]["text_view"].endswith("<|predictor_2|><|predictor_1|>") and rows[0]["enc_text_token"] == "<|predictor_1|>"
    assert rows[0]["code_view"].endswith(answer) and rows[0]["trained"] == answer + "<|im_end|>"


def _count_embedded_tokens(model) -> list[int]:
    """Tokens reaching the embedding layer, one entry per forward (an independent view of what ran)."""
    counts = []
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: counts.append(args[0].numel()))
    return counts


@pytest.mark.parametrize("k", [0, 1])
def test_shared_view_prefix_equals_each_row_alone_values_and_gradients(tokenizer, k):
    """The template prefix of the chat views runs once; Enc and the gradient match every row run alone."""
    ids = add_predictor_tokens(tokenizer, k) if k else []
    examples = [EXAMPLE, Example("three digits then a letter", "[0-9]{3}[a-z]", EXAMPLE.system),
                Example("a", "b", EXAMPLE.system)]
    features = [dict(vars(encode_example(e, tokenizer, ids, view_format="chat")), spans=[0, 0, 0, 0]) for e in examples]
    views = [f["text_ids"] for f in features] + [f["code_ids"] for f in features]
    torch.manual_seed(0)
    model = tiny_llama(len(tokenizer)).eval()
    batch = JEPACollator(tokenizer.pad_token_id, "separate", k, share_prefix=True)(features)
    prefix = int(batch["view_prefix_len"])
    system = tokenizer.decode(views[0][:prefix])
    assert "You are a helpful AI assistant named SmolLM" in system and prefix < min(len(v) for v in views)
    assert all(v[:prefix] == views[0][:prefix] for v in views) and len({v[prefix] for v in views}) > 1
    inputs = {key: batch.pop(key) for key in ("input_ids", "attention_mask", "labels")}
    embedded = _count_embedded_tokens(model)
    got = forward("separate", model, inputs, batch)
    width = batch["view_input_ids"].shape[1]  # the prefix ran once: 1 row, then 2B rows without it
    assert embedded[1:] == [prefix, len(views) * (width - prefix)]  # [0]: the full NTP rows
    (got.pred.sum() + got.target.pow(2).sum()).backward()
    shared_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    alone = torch.stack([model(torch.tensor([v]), output_hidden_states=True).hidden_states[-1][0, -1] for v in views])
    pred, target = alone.chunk(2)
    (pred.sum() + target.pow(2).sum()).backward()
    torch.testing.assert_close(got.pred, pred, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.target, target, rtol=1e-4, atol=1e-5)
    for shared, reference in zip(shared_grads, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(shared, reference, rtol=1e-3, atol=1e-5)


def test_common_prefix_len_keeps_every_enc_token_after_the_prefix():
    from lmjepa.data.packing import common_prefix_len

    assert common_prefix_len([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_len([[1, 2], [1, 2, 3]]) == 1  # the shorter row keeps its last token
    assert common_prefix_len([[5, 2], [1, 2]]) == 0


def test_shared_view_prefix_under_lora_equals_recomputing_it(tokenizer):
    from peft import LoraConfig, get_peft_model

    ids = add_predictor_tokens(tokenizer, 1)
    examples = [EXAMPLE, Example("three digits then a letter", "[0-9]{3}[a-z]", EXAMPLE.system)]
    features = [dict(vars(encode_example(e, tokenizer, ids)), spans=[0, 0, 0, 0]) for e in examples]  # chat views
    torch.manual_seed(0)
    model = get_peft_model(tiny_llama(len(tokenizer)), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    got, embedded = {}, _count_embedded_tokens(model)
    for share in (True, False):
        batch = JEPACollator(tokenizer.pad_token_id, "separate", 1, share_prefix=share)(features)
        inputs = {key: batch.pop(key) for key in ("input_ids", "attention_mask", "labels")}
        with torch.no_grad():
            got[share] = forward("separate", model, inputs, batch)
    assert len(embedded) == 3 + 2  # shared: full rows, prefix once, view rows; recomputed: full rows, view rows
    assert embedded[1] + embedded[2] < embedded[4]  # the prefix computed once costs fewer tokens
    assert int(JEPACollator(tokenizer.pad_token_id, "separate", 1, share_prefix=True)(features)["view_prefix_len"]) > 0
    torch.testing.assert_close(got[True].pred, got[False].pred, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[True].target, got[False].target, rtol=1e-4, atol=1e-5)


def test_effective_conditions_record_what_acted():
    from lmjepa.config import from_dict
    from lmjepa.training.config import RunConfig
    from lmjepa.training.run import effective_conditions

    official = {"data": {"train_prompt": True, "train_eos": False}, "jepa": {"accumulation_scaling": "official"},
                "train": {"batch_size": 2, "gradient_accumulation_steps": 4}}
    row = effective_conditions(from_dict(official, RunConfig), processes=2)
    assert row["global_batch"] == 16 and row["effective_weights"] == {"ntp": 4.0, "llm-jepa": 4.0}  # undivided
    assert row["official_conditions_acted"] == ["train_prompt", "train_eos=false", "accumulation_scaling=official"]
    ntp = from_dict({**official, "jepa": {"lbd": 0.0}}, RunConfig)  # the official NTP runs: the stock Trainer
    assert effective_conditions(ntp)["effective_weights"] == {"ntp": 1.0}
    assert effective_conditions(ntp)["official_conditions_acted"] == ["train_prompt", "train_eos=false"]


def test_inspect_json_prints_the_objective_resolved_once(tmp_path, capsys, base_tokenizer_path, data_dir):
    """``--set jepa.lbd=0.5`` gives exactly one llm-jepa term of weight 0.5; ``objectives: [sigreg]`` gives sigreg
    alone (beside NTP's γ), with no LLM-JEPA weight recorded; setting λ both ways is refused naming both keys."""
    import json

    from lmjepa.cli.main import main
    from lmjepa.objectives import AUXILIARIES
    from lmjepa.training.config import load_run_config

    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{name: {base_tokenizer_path}}}\ndata: {{data_dir: {data_dir}}}\n")
    assert main(["inspect", str(config), "--rows", "1", "--json", "--set", "jepa.lbd=0.5"]) == 0
    objective = json.loads(capsys.readouterr().out)["objective"]
    assert [(t["name"], t["weight"]) for t in objective] == [("ntp", 1.0), ("llm-jepa", 0.5)]
    assert objective[1]["distance"] == "cosine" and objective[1]["dropout"] == 0.0

    config.write_text(f"model: {{name: {base_tokenizer_path}}}\ndata: {{data_dir: {data_dir}}}\n"
                      "objectives: [{name: sigreg, weight: 0.01}]\n")
    assert main(["inspect", str(config), "--rows", "1", "--json"]) == 0
    objective = json.loads(capsys.readouterr().out)["objective"]
    assert [(t["name"], t["weight"]) for t in objective] == [("ntp", 1.0), ("sigreg", 0.01)]
    assert {k: objective[1][k] for k in AUXILIARIES["sigreg"].PARAMS} == AUXILIARIES["sigreg"].PARAMS
    assert load_run_config(config).llm_jepa_weight() is None  # an objectives-only run records no λ

    config.write_text(f"model: {{name: {base_tokenizer_path}}}\ndata: {{data_dir: {data_dir}}}\n"
                      "jepa: {lbd: 0.5}\nobjectives: [{name: llm-jepa, weight: 1.0}]\n")
    assert main(["inspect", str(config), "--json"]) == 2
    err = capsys.readouterr().err
    assert "jepa.lbd" in err and "objectives" in err
    # STP's own default weight (0.02) is what the resolved objective, and so every record, carries
    config.write_text(f"model: {{name: {base_tokenizer_path}}}\ndata: {{data_dir: {data_dir}}}\n"
                      "objectives: [{name: stp}]\n")
    assert [t["weight"] for t in load_run_config(config).objective_terms()] == [1.0, 0.02]
