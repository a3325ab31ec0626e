"""The official code's side, run in a venv with the official code's dependencies (transformers 4.55 or 5.2.0):

    python official_side.py OFFICIAL_CHECKOUT WORK

(a) the official labels: ``finetune.load_and_prepare_dataset`` + ``DataCollatorForLanguageModeling(mlm=False)``;
(b) one accumulated optimizer step (GA 4) of the official ``RepresentationTrainer`` (λ 1, γ 1, k 1) and of the
stock ``Trainer`` on the ``--regular`` rows; (c) the official ``evaluate.eval`` scoring of committed predictions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.cuda.current_device = lambda: 0  # the official code asks which GPU it is on, at import and while loading data

official, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
sys.path.insert(0, str(official))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import transformers  # noqa: E402
from transformers import DataCollatorForLanguageModeling, Trainer  # noqa: E402

import finetune  # noqa: E402  (the official finetune.py)
from common import LAST_TOKEN, tiny_model, tokenizer_with_official_tokens, training_args, update  # noqa: E402

tag = transformers.__version__
tokenizer = tokenizer_with_official_tokens(work / "tokenizer")
data = str(work / "synth_train.jsonl")  # the name matters: the official code picks behaviour by file-name prefix
kwargs = dict(max_length=256, predictors=1)
jepa_rows = finetune.load_and_prepare_dataset(data, tokenizer, "HuggingFaceTB/SmolLM2-135M-Instruct", **kwargs)
regular_rows = finetune.load_and_prepare_dataset(data, tokenizer, "HuggingFaceTB/SmolLM2-135M-Instruct", regular=True, **kwargs)
collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
batch = collator([jepa_rows[i] for i in range(len(jepa_rows))])
out = {"transformers": tag, "input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
       "labels": batch["labels"], "input_ids_user": batch["input_ids_user"],
       "attention_mask_user": batch["attention_mask_user"], "input_ids_assistant": batch["input_ids_assistant"],
       "attention_mask_assistant": batch["attention_mask_assistant"]}

for name, rows, make in (("jepa", jepa_rows, lambda m, a: finetune.RepresentationTrainer(
        model=m, args=a, train_dataset=rows, data_collator=collator, lbd=1.0, gamma=1.0, last_token=LAST_TOKEN)),
                         ("regular", regular_rows, lambda m, a: Trainer(model=m, args=a, train_dataset=rows,
                                                                         data_collator=collator))):
    model = tiny_model(work)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = make(model, training_args(work, f"official-{name}"))
    trainer.train()
    out[f"update_{name}"] = update(model, before)
    out[f"accepts_loss_kwargs_{name}"] = bool(trainer.model_accepts_loss_kwargs)

sys.argv = [sys.argv[0]]
import evaluate as official_evaluate  # noqa: E402  (the official evaluate.py; its main() is behind __name__)

scores = {}
for line in (work / "predictions.jsonl").read_text().splitlines():
    record = json.loads(line)
    response = record["prediction"].strip()
    if response.endswith("<|end|>"):  # generate_response's last clean-up
        response = response[:-7].strip()
    scores.setdefault(record["run"], []).append(
        bool(official_evaluate.eval(response, record["messages"], "synth_test.jsonl", None)))
out["official_scores"] = scores
torch.save(out, work / f"official-{tag}.pt")
print(f"official side, transformers {tag}: wrote {work / f'official-{tag}.pt'}")
