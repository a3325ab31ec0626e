"""Data reading errors, label masking, view spans and Enc indices on real templated examples."""

import json

import pytest

from lmjepa.data.tasks import PACKAGED
from lmjepa.data.jsonl import DataError, Example, data_dir, read_examples
from lmjepa.evaluation.tasks import get_task
from lmjepa.data.packing import JEPACollator
from lmjepa.data.views import IGNORE_INDEX, encode_dataset, encode_example
from lmjepa.evaluation.generate import prompt_ids
from lmjepa.models.loading import add_predictor_tokens, load_tokenizer


def _write(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u"},
                                {"role": "assistant", "content": "a"}]})


# ---- errors name the file and line -------------------------------------------------------------

def test_malformed_json_names_file_and_line(tmp_path):
    path = _write(tmp_path, [GOOD, "", '{"messages": [ oops'])
    with pytest.raises(DataError, match=rf"{path}:3:16: malformed JSON"):  # column of 'o', 1-based
        read_examples(path)


def test_missing_role_names_file_and_line(tmp_path):
    bad = json.dumps({"messages": [{"role": "user", "content": "u"}]})
    path = _write(tmp_path, [GOOD, bad])
    with pytest.raises(DataError, match=rf"{path}:2: missing role 'assistant'"):
        read_examples(path)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}, "empty Text view"),
        ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": ""}]}, "empty Code view"),
        ({"text": "u", "code": ""}, "empty Code view"),
        ({"text": "u"}, "missing or non-string field 'code'"),
        ({"prompt": "u"}, "expected 'messages' or 'text'/'code'"),
        ({"messages": [{"role": "user"}]}, r"messages\[0\] needs 'role' and 'content'"),
    ],
)
def test_bad_records(tmp_path, record, message):
    path = _write(tmp_path, [json.dumps(record)])
    with pytest.raises(DataError, match=rf"{path}:1: .*{message}"):
        read_examples(path)


def test_two_view_form_and_limit(tmp_path):
    path = _write(tmp_path, [json.dumps({"text": "t1", "code": "c1"}), json.dumps({"text": "t2", "code": "c2", "system": "s"})])
    examples = read_examples(path)
    assert [(e.text, e.code, e.system) for e in examples] == [("t1", "c1", None), ("t2", "c2", "s")]
    assert examples[1].source == f"{path}:2"
    assert len(read_examples(path, limit=1)) == 1


def test_absent_data_folder_and_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LMJEPA_DATA_DIR", raising=False)
    from lmjepa.data import jsonl

    if jsonl.CHECKOUT_DATA.is_dir():
        assert data_dir(None) == jsonl.CHECKOUT_DATA  # the last fallback: shared/data beside the checkout ...
    monkeypatch.setattr(jsonl, "CHECKOUT_DATA", tmp_path / "no-checkout")
    with pytest.raises(DataError, match="no data folder"):  # ... and without it, a clear error
        data_dir(None)
    with pytest.raises(DataError, match="data folder not found"):
        data_dir(tmp_path / "nowhere")
    (tmp_path / "llm-jepa").mkdir()
    # NL-RX ships in the package: found with a data folder that lacks it, and with no data folder at all
    packaged = get_task("nlrx-synth").file("train", tmp_path)
    assert packaged == PACKAGED / "synth_train.jsonl.gz" and get_task("nlrx-turk").file("test") == PACKAGED / "turk_test.jsonl.gz"
    assert len(read_examples(packaged)) == 8000 and len(read_examples(get_task("nlrx-synth").file("test"))) == 2000
    # every other task names the file, the setting and where to get it, in one line
    with pytest.raises(DataError, match=r"task 'gsm8k': test file llm-jepa/gsm8k_test.jsonl not found .*"
                                        r"set data.data_dir or LMJEPA_DATA_DIR") as err:
        get_task("gsm8k").file("test", tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="no data folder is set"):
        get_task("gsm8k").file("test")
    with pytest.raises(DataError, match="data file not found"):
        read_examples(tmp_path / "missing.jsonl")


# ---- views and labels on real NL-RX rows --------------------------------------------------------

@pytest.fixture()
def real_examples(data_dir):
    return read_examples(data_dir / "llm-jepa" / "synth_train.jsonl", limit=20)


def test_labels_mask_prompt_and_train_answer_plus_end_of_turn(tokenizer, real_examples):
    predictor_ids = add_predictor_tokens(tokenizer, 1)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for example in real_examples:
        encoded = encode_example(example, tokenizer, predictor_ids)
        trained = [i for i, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX]
        assert trained[-1] == eot  # the end-of-turn token is trained
        assert tokenizer.decode(trained[:-1]) == example.code  # exactly the assistant content before it
        prompt = prompt_ids(example, tokenizer)
        assert encoded.input_ids[: len(prompt)] == prompt  # generation prompt is a prefix of training rows
        assert all(label == IGNORE_INDEX for label in encoded.labels[: len(prompt)])  # prompt masked
        assert encoded.labels[-1] == IGNORE_INDEX  # ChatML's trailing newline is not trained


@pytest.mark.parametrize("k", [0, 1, 3])
def test_content_views_and_enc_index(base_tokenizer_path, real_examples, k):
    tokenizer = load_tokenizer(base_tokenizer_path)
    predictor_ids = add_predictor_tokens(tokenizer, k)
    features, counts = encode_dataset(real_examples[:4], tokenizer, predictor_ids, view_format="content")
    assert counts["truncated"] == 0 and counts["dropped"] == 0
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    n = len(features)
    for row, example in enumerate(real_examples[:4]):
        text_row = batch["view_input_ids"][row].tolist()
        code_row = batch["view_input_ids"][n + row].tolist()
        text_enc, code_enc = batch["view_enc_index"][row].item(), batch["view_enc_index"][n + row].item()
        if k:
            assert text_row[text_enc] == predictor_ids[-1]  # Enc(Text) at the last predictor token
            assert text_row[text_enc - k + 1 : text_enc + 1] == predictor_ids
            assert tokenizer.decode(text_row[: text_enc - k + 1]) == example.text
        else:
            assert tokenizer.decode(text_row[: text_enc + 1]) == example.text  # last user content token
        assert tokenizer.decode(code_row[: code_enc + 1]) == example.code  # last assistant content token
        assert batch["view_attention_mask"][row, text_enc].item() == 1
        assert batch["view_attention_mask"][row, text_enc + 1 :].sum().item() == 0  # only padding after it


def test_dynamic_padding(tokenizer, real_examples):
    features, _ = encode_dataset(real_examples[:5], tokenizer, add_predictor_tokens(tokenizer, 1))
    batch = JEPACollator(tokenizer.pad_token_id)(features)
    assert batch["input_ids"].shape[1] == max(len(f["input_ids"]) for f in features) < 512
    assert batch["attention_mask"].sum().item() == sum(len(f["input_ids"]) for f in features)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_truncation_is_counted_and_untrainable_rows_dropped(tokenizer, real_examples):
    predictor_ids = add_predictor_tokens(tokenizer, 1)
    full = [len(encode_example(e, tokenizer, predictor_ids).input_ids) for e in real_examples]
    features, counts = encode_dataset(real_examples, tokenizer, predictor_ids, max_length=min(full) - 3)
    assert counts["truncated"] == len(real_examples)
    assert counts["dropped"] + len(features) == len(real_examples)
    assert all(len(f["input_ids"]) == min(full) - 3 for f in features)
    # A budget that ends inside the prompt leaves nothing to train: every row is dropped, and counted.
    features, counts = encode_dataset(real_examples, tokenizer, predictor_ids, max_length=8)
    assert features == [] and counts["dropped"] == len(real_examples)


def test_example_without_system_uses_template_default(tokenizer):
    example = Example(text="lines with a vowel", code=".*[AEIOUaeiou].*")
    encoded = encode_example(example, tokenizer, add_predictor_tokens(tokenizer, 1))
    trained = [i for i, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained[:-1]) == example.code
