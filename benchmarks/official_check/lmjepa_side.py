"""lmjepa's side of the official-trainer check, run in lmjepa's venv:

    python lmjepa_side.py prepare WORK      # rows, tokenizer, tiny Llama, predictions → WORK
    python lmjepa_side.py compare WORK OUT  # lmjepa's labels / updates / scores vs each official-*.pt → OUT (Markdown)

lmjepa's ``official`` conditions: ``data.train_prompt: true``, ``data.train_eos: false``, chat views, k 1, and for the
JEPA run ``jepa.accumulation_scaling: official``; the NTP run keeps lmjepa's accumulation (the stock Trainer's).
"""

from __future__ import annotations

import glob
import gzip
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LAST_TOKEN, ROWS, TINY, tiny_model, tokenizer_with_official_tokens, training_args, update  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PILOT = REPO / "docs" / "results" / "dispute-nlrx" / "pilot"


def prepare(work: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmjepa.models.loading import resolve_model_path

    work.mkdir(parents=True, exist_ok=True)
    source = Path(resolve_model_path("smollm2-135m-instruct"))
    (work / "tokenizer").mkdir(exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, work / "tokenizer" / name)
    config_path = work / "tokenizer" / "tokenizer_config.json"  # transformers 5 names its own backend class;
    tokenizer_config = json.loads(config_path.read_text())      # 4.55 knows SmolLM2's original one
    tokenizer_config["tokenizer_class"] = "GPT2TokenizerFast"
    config_path.write_text(json.dumps(tokenizer_config, indent=2))
    packaged = REPO / "src" / "lmjepa" / "data" / "nlrx"
    with gzip.open(packaged / "synth_train.jsonl.gz", "rt") as f:
        (work / "synth_train.jsonl").write_text("".join(next(f) for _ in range(ROWS)))
    tokenizer = tokenizer_with_official_tokens(work / "tokenizer")
    config = dict(TINY, vocab_size=len(tokenizer))
    (work / "tiny.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    torch.save(LlamaForCausalLM(LlamaConfig(**config)).state_dict(), work / "tiny.pt")
    with gzip.open(packaged / "synth_test.jsonl.gz", "rt") as f:
        gold = [json.loads(line)["messages"] for line in f]
    lines = []
    for path in sorted(glob.glob(str(PILOT / "*" / "seed-*" / "predictions.jsonl"))):
        run = Path(path).parent.parent.name
        for index, line in enumerate(Path(path).read_text().splitlines()):
            record = json.loads(line)
            lines.append(json.dumps({"run": run, "prediction": record["prediction"], "messages": gold[index],
                                     "lmjepa_exact": bool(record["exact_match"])}))
    (work / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    print(f"prepared {work}: {ROWS} rows, vocab {len(tokenizer)}, {len(lines)} committed predictions")


def lmjepa_runs(work: Path) -> dict:
    from lmjepa.data.jsonl import read_examples
    from lmjepa.data.packing import JEPACollator
    from lmjepa.data.views import encode_example
    from lmjepa.training.config import JEPAConfig
    from lmjepa.training.trainer import JEPATrainer

    tokenizer = tokenizer_with_official_tokens(work / "tokenizer")
    ids = tokenizer.convert_tokens_to_ids(["<|predictor_1|>"])
    examples = read_examples(work / "synth_train.jsonl")
    features = []
    for example in examples:
        encoded = vars(encode_example(example, tokenizer, ids, view_format="chat", train_prompt=True, train_eos=False))
        features.append({k: v for k, v in encoded.items() if k != "truncated"} | {"spans": [0, 0, 0, 0]})
    out = {"input_ids": [f["input_ids"] for f in features], "labels": [f["labels"] for f in features],
           "text_ids": [f["text_ids"] for f in features], "code_ids": [f["code_ids"] for f in features]}
    for name, jepa in (("jepa", JEPAConfig(lbd=1.0, predictors=1, view_format="chat", accumulation_scaling="official")),
                       ("regular", JEPAConfig(lbd=0.0, predictors=1, view_format="chat", monitor=False))):
        model = tiny_model(work)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer = JEPATrainer(model=model, args=training_args(work, f"lmjepa-{name}"), train_dataset=features,
                              data_collator=JEPACollator(tokenizer.pad_token_id, "separate", 1), jepa=jepa)
        trainer.train()
        out[f"update_{name}"] = update(model, before)
    return out


def relative(a: dict, b: dict) -> tuple[float, float, float]:
    """(‖a − b‖ / ‖b‖, ‖b‖ / ‖a‖, cos(a, b)) over all parameters: a lmjepa's update, b the official one."""
    x = torch.cat([a[n].flatten() for n in b])
    y = torch.cat([b[n].flatten() for n in b])
    return float((x - y).norm() / y.norm()), float(y.norm() / x.norm()), float(torch.nn.functional.cosine_similarity(x, y, dim=0))


def compare(work: Path, out: Path) -> int:
    """Writes the table; rc 0 when (a), the Enc rows and (c) are equal for every version and the JEPA run's
    update equals the official one (≤ 1e-5 relative) under transformers 4.55.0, the replication's version."""
    from lmjepa.evaluation.metrics import exact_match

    mine = lmjepa_runs(work)
    records = [json.loads(line) for line in (work / "predictions.jsonl").read_text().splitlines()]
    runs = list(dict.fromkeys(r["run"] for r in records))
    lines = ["| transformers (official side) | (a) rows with equal ids and labels | label tokens | view rows equal up to "
             "Enc | (b) JEPA run: rel. diff / official ÷ lmjepa scale / cos | (b) NTP run: rel. diff / scale / cos | "
             "Trainer leaves the JEPA loss undivided (`model_accepts_loss_kwargs`) | (c) scoring: rows equal |",
             "|---|---|---|---|---|---|---|---|"]
    failed = 0
    for path in sorted(work.glob("official-*.pt")):
        theirs = torch.load(path)
        rows_equal, tokens, enc_equal = 0, 0, 0
        for i in range(ROWS):
            n = int(theirs["attention_mask"][i].sum())
            rows_equal += (theirs["input_ids"][i, :n].tolist() == mine["input_ids"][i]
                           and theirs["labels"][i, :n].tolist() == mine["labels"][i])
            tokens += int((theirs["labels"][i, :n] != -100).sum())
            views = []  # the official view rows up to and including the token Enc reads (len(unpadded) + last_token)
            for key in ("user", "assistant"):
                length = int(theirs[f"attention_mask_{key}"][i].sum())
                views.append(theirs[f"input_ids_{key}"][i, :length + LAST_TOKEN + 1].tolist())
            enc_equal += views == [mine["text_ids"][i], mine["code_ids"][i]]
        jepa = relative(mine["update_jepa"], theirs["update_jepa"])
        ntp = relative(mine["update_regular"], theirs["update_regular"])
        official = [s for run in runs for s in theirs["official_scores"][run]]
        same = sum(o == r["lmjepa_exact"] == exact_match(r["prediction"], r["messages"][2]["content"])
                   for r, o in zip(records, official))
        ok = rows_equal == enc_equal == ROWS and same == len(records)
        if theirs["transformers"] == "4.55.0":
            ok = ok and jepa[0] <= 1e-5
        failed += not ok
        show = lambda r: f"{r[0]:.1e} / {r[1]:.4f} / {r[2]:.6f}"
        lines.append(f"| {theirs['transformers']} | {rows_equal} of {ROWS} | {tokens} | {enc_equal} of {ROWS} | "
                     f"{show(jepa)} | {show(ntp)} | {theirs['accepts_loss_kwargs_jepa']} | {same} of {len(records)} |")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)
    return 1 if failed or len(lines) == 2 else 0


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]))
    else:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
