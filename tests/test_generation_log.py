"""A killed evaluation resumes at the batch it had reached (issue 34, nothing lost): ``GenerationLog`` keeps each
finished generation (or multiple-choice) batch, a resumed ``generate`` / ``choice_logprobs`` reuses exactly those
and produces what an uninterrupted one does, and anything that would change the computation (the weights, the
budget, the choices, the rows) reuses nothing."""

from __future__ import annotations

import json

import pytest
import torch

from lmjepa.data.jsonl import Example
from lmjepa.evaluation.evaluate import evaluate_examples
from lmjepa.evaluation.generate import GenerationLog, generate, model_fingerprint
from lmjepa.evaluation.tasks import get_task
from lmjepa.training.config import EvalConfig
from lmjepa.training.run_folder import PARTIAL_GENERATIONS

from conftest import Killed, tiny_llama

TEXTS = ["dog", "lines with a vowel", "cat or bird", "z", "three letters then a number", "ab", "words ending in x"]
EXAMPLES = [Example(text=t, code="x") for t in TEXTS]  # 7 rows: 4 batches of 2
STEPS = 5


def _counting(model, kill_at: int | None = None) -> list[int]:
    """Wrap ``model.generate``: record each call, and raise ``Killed`` at call ``kill_at`` (1-based)."""
    calls, original = [], model.generate

    def wrapped(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if kill_at is not None and len(calls) == kill_at:
            raise Killed
        return original(*args, **kwargs)

    model.generate = wrapped
    return calls


def test_a_killed_generation_resumes_at_its_batch_with_the_outputs_of_an_uninterrupted_one(tokenizer, tmp_path):
    model = tiny_llama(len(tokenizer), seed=1).eval()
    whole = generate(model, tokenizer, EXAMPLES, STEPS, batch_size=2, progress=False, with_stops=True)
    path = tmp_path / PARTIAL_GENERATIONS
    calls = _counting(model, kill_at=3)
    with pytest.raises(Killed):
        generate(model, tokenizer, EXAMPLES, STEPS, batch_size=2, progress=False, with_stops=True,
                 log=GenerationLog(path, model, tokenizer, STEPS))
    assert len(path.read_text().splitlines()) == 2  # the two batches finished before the kill
    with open(path, "a") as handle:
        handle.write('{"key": "torn')  # a kill inside the third write
    calls = _counting(model)
    log = GenerationLog(path, model, tokenizer, STEPS)
    resumed = generate(model, tokenizer, EXAMPLES, STEPS, batch_size=2, progress=False, with_stops=True, log=log)
    assert resumed == whole
    assert (log.reused_batches, len(calls), sum(calls)) == (2, 2, 3)  # batches of 2 + 1 rows generated again
    assert log.reused_seconds > 0
    # the torn tail was cut, so the batches appended after it are whole: a second resume reuses all four
    assert [json.loads(line) for line in path.read_text().splitlines()] and len(path.read_text().splitlines()) == 4
    again = GenerationLog(path, model, tokenizer, STEPS)
    assert generate(model, tokenizer, EXAMPLES, STEPS, batch_size=2, progress=False, with_stops=True, log=again) == whole
    assert again.reused_batches == 4


def test_other_weights_another_budget_or_other_rows_reuse_nothing(tokenizer, tmp_path):
    model = tiny_llama(len(tokenizer), seed=1).eval()
    path = tmp_path / PARTIAL_GENERATIONS
    generate(model, tokenizer, EXAMPLES, STEPS, batch_size=2, progress=False, log=GenerationLog(path, model, tokenizer, STEPS))
    assert len(path.read_text().splitlines()) == 4

    def reused(model, steps=STEPS, examples=EXAMPLES) -> int:
        log = GenerationLog(path, model, tokenizer, steps)
        generate(model, tokenizer, examples, steps, batch_size=2, progress=False, log=log)
        return log.reused_batches

    assert reused(model) == 4
    assert reused(model, steps=STEPS + 1) == 0
    assert reused(model, examples=[Example(text=t + "!", code="x") for t in TEXTS]) == 0
    fingerprint = model_fingerprint(model)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] += 1e-6  # one weight, by one part in a million
    assert model_fingerprint(model) != fingerprint
    assert reused(model) == 0


def test_evaluate_examples_resumes_its_generation_and_removes_the_log_when_done(tokenizer, tmp_path):
    model = tiny_llama(len(tokenizer), seed=1).eval()
    task, config = get_task("nlrx-synth"), EvalConfig(max_new_tokens=STEPS, batch_size=2)
    whole = evaluate_examples(model, tokenizer, EXAMPLES, task, config, tmp_path / "whole")
    out = tmp_path / "killed"
    _counting(model, kill_at=2)
    with pytest.raises(Killed):
        evaluate_examples(model, tokenizer, EXAMPLES, task, config, out)
    assert (out / PARTIAL_GENERATIONS).is_file() and not (out / "predictions.jsonl").exists()
    first = json.loads((out / PARTIAL_GENERATIONS).read_text())["seconds"]
    calls = _counting(model)
    metrics = evaluate_examples(model, tokenizer, EXAMPLES, task, config, out)
    assert len(calls) == 3 and metrics["generation_batches_reused"] == 1
    assert "generation_batches_reused" not in whole
    assert not (out / PARTIAL_GENERATIONS).exists() and not (tmp_path / "whole" / PARTIAL_GENERATIONS).exists()
    assert (out / "predictions.jsonl").read_text() == (tmp_path / "whole" / "predictions.jsonl").read_text()
    timings = ("generate_seconds", "eval_seconds", "generation_batches_reused")
    assert {k: v for k, v in metrics.items() if k not in timings} == {k: v for k, v in whole.items() if k not in timings}
    assert metrics["generate_seconds"] >= round(first, 1)  # the reused batch's seconds are counted


def test_a_run_killed_in_its_evaluation_resumes_it_from_the_generated_batches(tmp_path, tiny_model_dir, data_dir,
                                                                              monkeypatch):
    """Through the whole pipeline: the resumed process reloads the weights from the last checkpoint, and the
    batches generated before the kill are still reused (the weights' hash agrees), with the same predictions."""
    import yaml
    from transformers import LlamaForCausalLM

    from lmjepa.pipeline.run import train_and_evaluate
    from lmjepa.training.config import load_run_config

    def config(out):
        path = tmp_path / f"{out}.yaml"
        path.write_text(yaml.safe_dump({
            "name": "tiny", "output_dir": str(tmp_path / out), "model": {"name": str(tiny_model_dir)},
            "task": "nlrx-synth", "data": {"data_dir": str(data_dir), "max_train_examples": 16, "max_eval_examples": 6},
            "train": {"batch_size": 4, "learning_rate": 1e-3, "save_steps": 2, "extra": {"disable_tqdm": True}},
            "eval": {"max_new_tokens": 6, "batch_size": 2}}))
        return load_run_config(path)

    whole = train_and_evaluate(config("whole"))
    calls, original = [], LlamaForCausalLM.generate

    def dies_in_the_third_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "generate", dies_in_the_third_batch)
    with pytest.raises(Killed):
        train_and_evaluate(config("killed"))
    out = tmp_path / "killed"
    assert len((out / PARTIAL_GENERATIONS).read_text().splitlines()) == 2
    resumed = train_and_evaluate(config("killed"))
    assert len(calls) == 3 + 1 and resumed["generation_batches_reused"] == 2  # only the third batch again
    assert (out / "predictions.jsonl").read_text() == (tmp_path / "whole" / "predictions.jsonl").read_text()
    assert resumed["exact_match"] == whole["exact_match"] and not (out / PARTIAL_GENERATIONS).exists()


def test_a_killed_multiple_choice_evaluation_resumes_with_bit_identical_log_probabilities(tokenizer, tmp_path):
    from lmjepa.evaluation.choice import choice_logprobs

    model = tiny_llama(len(tokenizer), seed=3).eval()
    questions = [Example(text=f"{t}? A, B, C or D", code="ABCD"[i % 4]) for i, t in enumerate(TEXTS)]
    whole = choice_logprobs(model, tokenizer, questions, ("A", "B", "C", "D"), batch_size=2, progress=False)
    calls, forward = [], model.forward

    def dies_in_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return forward(*args, **kwargs)

    model.forward = dies_in_the_third_batch
    path = tmp_path / PARTIAL_GENERATIONS
    with pytest.raises(Killed):
        choice_logprobs(model, tokenizer, questions, ("A", "B", "C", "D"), batch_size=2, progress=False,
                        log=GenerationLog(path, model, tokenizer, None, choices=("A", "B", "C", "D")))
    assert len(path.read_text().splitlines()) == 2
    log = GenerationLog(path, model, tokenizer, None, choices=("A", "B", "C", "D"))
    resumed = choice_logprobs(model, tokenizer, questions, ("A", "B", "C", "D"), batch_size=2, progress=False, log=log)
    assert torch.equal(resumed, whole)  # bit for bit: float32 survives the JSON
    assert (log.reused_batches, len(calls)) == (2, 3 + 2)  # the two batches left, computed once each
    other = GenerationLog(path, model, tokenizer, None, choices=("D", "C", "B", "A"))
    choice_logprobs(model, tokenizer, questions, ("D", "C", "B", "A"), batch_size=2, progress=False, log=other)
    assert other.reused_batches == 0  # other choices: another computation

    # through evaluate_examples: a killed HellaSwag-style evaluation resumes, writes the same predictions and
    # removes the log
    model.forward = forward
    task, config = get_task("hellaswag"), EvalConfig(batch_size=2)
    expected = evaluate_examples(model, tokenizer, questions, task, config, tmp_path / "whole")
    calls.clear()
    model.forward = dies_in_the_third_batch
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        evaluate_examples(model, tokenizer, questions, task, config, out)
    assert (out / PARTIAL_GENERATIONS).is_file()
    metrics = evaluate_examples(model, tokenizer, questions, task, config, out)
    assert metrics["generation_batches_reused"] == 2 and not (out / PARTIAL_GENERATIONS).exists()
    assert (out / "predictions.jsonl").read_text() == (tmp_path / "whole" / "predictions.jsonl").read_text()
    assert metrics["exact_match"] == expected["exact_match"]
