"""Hugging Face datasets as input, built in the test (offline): the same examples as the JSONL form."""

from __future__ import annotations

import json

import pytest

from lmjepa.data.jsonl import DataError, read_examples
from lmjepa.training import run as run_module
from lmjepa.training.config import RunConfig

datasets = pytest.importorskip("datasets")
ROWS = {"question": ["dog then cat", "three digits"], "query": ["dog.*cat", "[0-9]{3}"], "hint": ["r1", "r2"]}
COLUMNS = {"text": "question", "code": "query", "system": "hint"}


def _expected():
    return [(q, c, h) for q, c, h in zip(ROWS["question"], ROWS["query"], ROWS["hint"])]


def _triples(examples):
    return [(e.text, e.code, e.system) for e in examples]


def test_every_dataset_form_reads_the_same_examples(tmp_path):
    dataset = datasets.Dataset.from_dict(ROWS)
    dataset.save_to_disk(str(tmp_path / "folder"))
    dataset.to_parquet(str(tmp_path / "rows.parquet"))
    arrow = next((tmp_path / "folder").glob("*.arrow"))
    datasets.DatasetDict({"train": dataset, "test": dataset.select([1])}).save_to_disk(str(tmp_path / "splits"))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps({"question": q, "query": c, "hint": h}) + "\n" for q, c, h in _expected()))
    for source in (tmp_path / "folder", tmp_path / "rows.parquet", arrow, jsonl):
        assert _triples(read_examples(source, columns=COLUMNS)) == _expected(), source
    assert _triples(read_examples(tmp_path / "splits", columns=COLUMNS, split="test")) == _expected()[1:]
    with pytest.raises(DataError, match=r"no split 'validation'; it has \['test', 'train'\]"):
        read_examples(tmp_path / "splits", columns=COLUMNS, split="validation")


def test_missing_columns_and_unavailable_ids_are_clear_errors(tmp_path, monkeypatch):
    datasets.Dataset.from_dict(ROWS).save_to_disk(str(tmp_path / "folder"))
    with pytest.raises(DataError, match=r"column 'answer' \(data.columns.code\) not found; columns: \['question'"):
        read_examples(tmp_path / "folder", columns={"text": "question", "code": "answer"})
    with pytest.raises(DataError, match=r"row 1: expected 'messages' or 'text'/'code' fields"):
        read_examples(tmp_path / "folder")  # no mapping: the columns are not lmjepa's
    # `datasets` is already imported, so only lmjepa itself can keep it offline: no request reaches the hub
    import huggingface_hub

    asked = []

    def hub_request(self, *args, **kwargs):
        asked.append(kwargs.get("repo_id", args[:1]))
        raise OSError("no network in this test")

    monkeypatch.setattr(huggingface_hub.HfApi, "hf_hub_download", hub_request)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", hub_request)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")
    before = datasets.config.HF_HUB_OFFLINE
    with pytest.raises(DataError, match=r"dataset 'someone/nowhere' is not available offline"):
        read_examples("someone/nowhere", split="train")
    assert asked == [] and datasets.config.HF_HUB_OFFLINE == before  # offline for that call only


def test_a_run_config_trains_from_a_saved_dataset(tmp_path):
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(ROWS)}).save_to_disk(str(tmp_path / "mine"))
    config = RunConfig().with_overrides({"data.train_file": str(tmp_path / "mine"), "data.columns": COLUMNS})
    assert _triples(run_module.load_examples(config, "train")) == _expected()
