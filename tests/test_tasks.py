"""Task registry and every task metric, on hand-made cases that expose the reference scorer's bugs."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from lmjepa.cli.main import main
from lmjepa.config import from_dict as _from_dict
from lmjepa.training.config import RunConfig


def from_dict(values):
    return _from_dict(values, RunConfig)
from lmjepa.data.build import build
from lmjepa.data.jsonl import DataError, Example, read_examples
from lmjepa.evaluation import metrics as m
from lmjepa.evaluation.choice import choice_logprobs, choice_token_ids, choose
from lmjepa.evaluation.evaluate import score
from lmjepa.evaluation.generate import prompt_ids
from lmjepa.evaluation.sql import execution_match, normalized_sql, score_spider
from lmjepa.evaluation.tasks import METRICS, TASKS, Task, get_task, register_metric, register_task

from conftest import tiny_llama


# --- GSM8K -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction, reference, expected", [
    ("so 1,000 in all\n#### 1,000", "#### 1000", True),       # thousands separator
    ("#### 18.00", "... #### 18", True),                      # trailing zeros
    ("#### $18", "#### 18", True),                            # currency sign
    ("#### −5", "#### -5", True),                             # Unicode minus
    ("#### +7", "#### 7", True),
    ("#### 5", "#### -5", False),                             # sign matters
    ("#### 17", "#### 18", False),
    ("she earns 18 dollars", "#### 18", False),               # no final-answer marker: wrong, not guessed
    ("", "#### 18", False),                                   # empty answer
    ("#### ", "#### 0", False),                               # marker without a number
    ("#### 3\nwait #### 18", "#### 18", True),                # the last marker counts
])
def test_gsm8k_match(prediction, reference, expected):
    assert m.gsm8k_match(prediction, reference) is expected


@pytest.mark.parametrize("prediction, expected_last, expected_marker", [
    ("So she pays 18 dollars in all.", True, False),        # right, but no '####': only the lenient check
    ("18 eggs, 3 left, so 20 - 2 = 16", False, False),        # the last number decides, not any number
    ("She keeps 18 and sells the rest. #### 16", False, True),  # answer stated, and wrong
    ("1,000 - 982 = 18", True, False),                         # commas are thousands separators
    ("$18.00", True, False),
    ("#### eighteen", False, False),                         # a marker without a number is no answer
    ("", False, False),
])
def test_gsm8k_diagnostics(prediction, expected_last, expected_marker):
    assert m.gsm8k_last_number_match(prediction, "... #### 18") is expected_last
    assert m.has_gsm8k_answer(prediction) is expected_marker


def test_gsm8k_score_reports_diagnostics_beside_the_strict_metric():
    predictions = ["2 + 2 = 4\n#### 4", "The answer is 4.", "#### 5"]
    metrics, rows = score(predictions, [Example(text="q", code="2+2 <<2+2=4>>4\n#### 4")] * 3, get_task("gsm8k"))
    assert metrics["gsm8k_match"] == pytest.approx(100 / 3)
    assert metrics["last_number_match"] == pytest.approx(200 / 3) and metrics["answer_marker_rate"] == 100 * 2 / 3
    assert [r["last_number_match"] for r in rows] == [True, True, False]


# --- NQ-Open -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction, reference, expected", [
    ("", "Paris", False),                          # the reference's reversed test counted this as correct
    ("   ", "Paris", False),
    ("Nin", "Nine", False),                        # prediction-in-gold (reversed) would accept a fragment
    ("There are Nine.", "Nine", True),             # gold-in-prediction after normalisation
    ("the Eiffel tower", "Eiffel Tower; La Tour", True),
    ("la tour", "Eiffel Tower; La Tour", True),    # any alias
    ("1999", "9", False),                          # word boundaries, not raw substrings
    ("The", "the", False),                         # a gold that normalises to nothing matches nothing
])
def test_nq_open_match(prediction, reference, expected):
    assert m.nq_open_match(prediction, reference) is expected


def test_label_match_and_invalid_count():
    assert m.label_match("Good.", "Good") and m.label_match(" bad ", "Bad")
    assert not m.label_match("Very Good", "Good") and not m.label_match("", "Good")
    examples = [Example("t", label) for label in ["Good", "Bad", "Good"]]
    metrics, rows = score(["good", "Terrible", "Bad"], examples, get_task("rotten-tomatoes"), progress=False)
    assert metrics["label_match"] == pytest.approx(100 / 3) and metrics["invalid"] == 1
    assert [r["label_match"] for r in rows] == [True, False, False]


# --- Spider ------------------------------------------------------------------------------------------

@pytest.fixture()
def spider_dir(tmp_path):
    folder = tmp_path / "spider"
    db = folder / "database" / "shop" / "shop.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:
        connection.executescript("CREATE TABLE item(id INTEGER, name TEXT, price REAL);"
                                 "INSERT INTO item VALUES (1,'pen',2.5),(2,'ink',1.0),(3,'pad',4.0),(4,'pen',2.5);")
    return folder


def test_execution_match_rules(spider_dir):
    db = spider_dir / "database" / "shop" / "shop.sqlite"
    gold = "SELECT name FROM item WHERE price > 2"
    assert execution_match(db, gold, "select name from item where price > 2 order by name desc")  # order ignored
    assert execution_match(db, gold, "SELECT DISTINCT name FROM item WHERE price > 2") is False  # multiset, not set
    ordered = "SELECT name FROM item ORDER BY price"
    assert execution_match(db, ordered, "SELECT name FROM item ORDER BY price")
    assert execution_match(db, ordered, "SELECT name FROM item ORDER BY price DESC") is False  # ORDER BY: order counts
    empty = "SELECT name FROM item WHERE price > 100"
    assert execution_match(db, empty, "SELECT nme FROM item") is False  # an error is not "an empty result"
    assert execution_match(db, empty, "SELECT name FROM item WHERE id < 0") is True
    assert execution_match(db, "SELECT nonsense FROM nowhere", "SELECT 1") is None  # gold fails: not scorable
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    assert execution_match(db, gold, endless, timeout_s=0.3) is False  # time limit
    assert execution_match(db, gold, "DELETE FROM item") is False  # read-only connection
    assert execution_match(db, "SELECT count(*) FROM item", "SELECT count(*) FROM item") is True


def test_score_spider_falls_back_to_exact_sql_and_counts(spider_dir):
    golds = ["SELECT name FROM item WHERE price > 2", "SELECT a FROM t WHERE b = 'X'", "SELECT a FROM t"]
    preds = ["SELECT name FROM item WHERE price >= 2.5", "select  a from T where b='X';", "SELECT b FROM t"]
    questions = ["For db_id:[shop]\n\nq", "For db_id:[missing]\n\nq", "For db_id:[missing]\n\nq"]
    metrics, rows = score_spider(preds, golds, questions, spider_dir)
    assert metrics["n_execution"] == 1 and metrics["n_exact_fallback"] == 2
    assert metrics["execution_match"] == 100.0 and metrics["exact_sql_match"] == 50.0
    assert metrics["spider_match"] == pytest.approx(200 / 3) and metrics["databases_found"] == ["shop"]
    assert [r["method"] for r in rows] == ["execution", "exact_sql", "exact_sql"]
    assert normalized_sql("SELECT a FROM t WHERE b = 'X'") != normalized_sql("SELECT a FROM t WHERE b = 'x'")


def test_spider_on_the_real_department_store_database(data_dir):
    rows = [e for e in read_examples(data_dir / "llm-jepa" / "spider_test.jsonl") if "department_store" in e.text]
    assert rows, "spider_test has department_store questions"
    metrics, verdicts = score([e.code for e in rows], rows, get_task("spider"), data_dir=data_dir, progress=False)
    assert metrics["n_execution"] == len(rows) and metrics["execution_match"] == 100.0 and metrics["gold_errors"] == 0
    assert "department_store" in metrics["note"]


# --- HellaSwag: choice by next-token probability on the full prompt ------------------------------------

def test_choice_logprobs_equal_unpadded_full_prompt_forward(tokenizer, data_dir):
    examples = read_examples(data_dir / "llm-jepa" / "hellaswag_test.jsonl", 5)
    lengths = [len(prompt_ids(e, tokenizer)) for e in examples]
    assert max(lengths) > 128  # the reference truncated these prompts to 128 tokens
    model = tiny_llama(len(tokenizer), seed=3)
    got = choice_logprobs(model, tokenizer, examples, ("A", "B", "C", "D"), batch_size=3, progress=False)
    ids = choice_token_ids(tokenizer, ("A", "B", "C", "D"))
    with torch.no_grad():
        for row, example in enumerate(examples):
            logits = model(torch.tensor([prompt_ids(example, tokenizer)])).logits[0, -1]
            torch.testing.assert_close(got[row], logits.log_softmax(-1)[ids], rtol=1e-4, atol=1e-4)
    assert choose(model, tokenizer, examples, ("A", "B", "C", "D"), progress=False) == [
        "ABCD"[i] for i in got.argmax(1).tolist()]
    with pytest.raises(ValueError, match="one token"):
        choice_token_ids(tokenizer, ("A", "Answer B, definitely"))


# --- registry, configs, build-data, CLI ----------------------------------------------------------------

def test_registry_lookup_extension_and_errors(tmp_path, monkeypatch):
    assert {"nlrx-synth", "nlrx-turk", "gsm8k", "spider", "nq-open", "hellaswag", "rotten-tomatoes", "yelp"} <= set(TASKS)
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_task(TASKS["gsm8k"])
    with pytest.raises(ValueError, match=r"task 'mine': metric 'bleu' is not one of \['exact'"):
        get_task("mine", {"mine": {"test_file": "x.jsonl", "metric": "bleu"}})
    mine = get_task("mine", {"mine": {"test_file": "x.jsonl", "metric": "exact", "max_new_tokens": 7}})
    assert mine.max_new_tokens == 7 and mine.train_file is None
    register_metric("startswith", lambda p, r: p.strip().startswith(r.strip()))
    try:
        task = Task("prefix-task", "x.jsonl", "startswith")
        metrics, _ = score(["abc", "xbc"], [Example("q", "ab"), Example("q", "ab")], task, progress=False)
        assert metrics["startswith_match"] == 50.0 and metrics["exact_match"] == 0.0
    finally:
        METRICS.pop("startswith")
    # a relative file missing from the data folder is looked up in the cache, with a build hint
    monkeypatch.setenv("LMJEPA_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="lmjepa build-data gsm8k"):
        get_task("gsm8k").file("train", tmp_path)
    cached = tmp_path / "cache" / "data" / "llm-jepa" / "gsm8k_train.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_text("{}\n")
    assert get_task("gsm8k").file("train", tmp_path) == cached
    with pytest.raises(DataError, match="evaluation-only"):
        get_task("yelp").file("train", tmp_path)


def test_subsets_first_and_spread(tmp_path, data_dir):
    from lmjepa.data.jsonl import take
    from lmjepa.training.run import load_examples

    assert take(list(range(10)), 4, "first") == [0, 1, 2, 3] and take(list(range(10)), 4, "spread") == [0, 2, 5, 7]
    assert take([1, 2], 5, "spread") == [1, 2]
    with pytest.raises(ValueError, match="subset"):
        take([1], 1, "random")
    config = from_dict({"task": "rotten-tomatoes", "data": {"data_dir": str(data_dir), "max_train_examples": 100}})
    labels = [e.code for e in load_examples(config, "train")]  # rows sorted Good…Bad: the first 100 are all Good
    assert labels.count("Good") == labels.count("Bad") == 50
    first = config.with_overrides({"data.subset": "first"})
    assert {e.code for e in load_examples(first, "train")} == {"Good"}


def test_legacy_config_keys_map_to_tasks():
    config = from_dict({"data": {"dataset": "turk"}, "eval": {"metric": "regex", "max_new_tokens": 9}})
    assert config.task == "nlrx-turk" and config.eval.max_new_tokens == 9
    with pytest.raises(KeyError, match="replaced by task"):
        from_dict({"data": {"dataset": "my_file_prefix"}})


def test_build_gsm8k_training_file(tmp_path, data_dir):
    path, rows = build("gsm8k", str(data_dir), tmp_path / "gsm8k_train.jsonl")
    assert rows == len((data_dir / "gsm8k" / "train.jsonl").read_text().splitlines())  # 7,473 in shared/data
    first = read_examples(path, 1)[0]
    raw = json.loads((data_dir / "gsm8k" / "train.jsonl").read_text().splitlines()[0])
    assert (first.system, first.text, first.code) == ("Answer the math question, show steps.", raw["question"], raw["answer"])
    bad = tmp_path / "raw" / "gsm8k"
    bad.mkdir(parents=True)
    (bad / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: 'answer' must be a string ending in '#### N'"):
        build("gsm8k", str(tmp_path / "raw"), tmp_path / "out.jsonl")


@pytest.mark.parametrize("task, key", [("rotten-tomatoes", "label_match"), ("hellaswag", "exact_match"),
                                       ("gsm8k", "gsm8k_match"), ("nq-open", "nq_open_match")])
def test_cli_evaluate_any_task_by_name(tmp_path, tiny_model_dir, data_dir, task, key, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{name: {tiny_model_dir}}}\ndata: {{data_dir: {data_dir}, max_eval_examples: 4}}\n"
                      "eval: {max_new_tokens: 4, batch_size: 4}\n")
    assert main(["evaluate", str(config), "--task", task, "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["n"] == 4
    assert ("generate_seconds" in metrics) and not (task == "gsm8k" and metrics["max_new_tokens"] != 256)
    assert metrics["fine_tuned"] is False and "lbd" not in metrics  # a base model carries no objective's λ
    rows = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    decoded = [json.loads(r) for r in rows]
    assert len(rows) == 4
    # the percentages are the per-row verdicts, and each verdict is the task's check of the saved prediction
    check = METRICS[get_task(task).metric][1]
    assert [r[key] for r in decoded] == [check(r["prediction"], r["reference"]) for r in decoded]
    assert metrics[key] == pytest.approx(100 * sum(r[key] for r in decoded) / 4)
    assert metrics["exact_match"] == pytest.approx(100 * sum(r["prediction"].strip() == r["reference"].strip()
                                                             for r in decoded) / 4)
    if task == "gsm8k":  # --rescore: the saved predictions, scored again, without loading the model
        edited = [dict(json.loads(r), prediction=json.loads(r)["reference"]) for r in rows[:2]] + [json.loads(r) for r in rows[2:]]
        (tmp_path / "out" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited))
        out = ["evaluate", str(config), "--task", task, "--out", str(tmp_path / "out"), "--rescore"]
        assert main(out) == 0
        again = json.loads((tmp_path / "out" / "metrics.json").read_text())
        assert again["gsm8k_match"] == 50.0 and again["generate_seconds"] == metrics["generate_seconds"]
        assert [json.loads(r)["gsm8k_match"] for r in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()][:2] == [True, True]
        (tmp_path / "out" / "predictions.jsonl").write_text('{"prediction": "x", "reference": "#### 1"}\n{"prediction": 3}\n')
        assert main(out) == 2
        assert "predictions.jsonl:2: a predictions row needs string 'prediction' and 'reference'" in capsys.readouterr().err
