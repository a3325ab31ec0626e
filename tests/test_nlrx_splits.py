"""OOD splits of NL-RX, each property recomputed independently from the raw files; bring-your-own data."""

import json
import random
import re

import pytest

from lmjepa.cli.main import main
from lmjepa.data.build import build, parallel_rows
from lmjepa.data.jsonl import DataError
from lmjepa.data.nlrx_splits import build_splits, parse_combo, write_splits
from lmjepa.data.regex_syntax import compositions, depth, parse_regex


def _rows(path):
    return [json.loads(line)["messages"] for line in path.read_text().splitlines()]


def _regex(messages):
    return messages[-1]["content"]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from conftest import DATA_DIR

    out = tmp_path_factory.mktemp("splits")
    files, manifest = build_splits(DATA_DIR, len, seed=3)  # length in characters: fast, same logic
    write_splits(out, files, manifest)
    return DATA_DIR / "llm-jepa", out


def test_dedup_and_paraphrase_against_set_arithmetic(splits):
    raw, out = splits
    norm = lambda s: re.sub(r"\s+", " ", s).strip()
    kept = {}
    for corpus in ("synth", "turk"):
        train, test = _rows(raw / f"{corpus}_train.jsonl"), _rows(raw / f"{corpus}_test.jsonl")
        regexes, texts = {norm(_regex(m)) for m in train}, {norm(m[-2]["content"]).lower() for m in train}
        kept[corpus] = [i for i, m in enumerate(test)
                        if norm(_regex(m)) not in regexes and norm(m[-2]["content"]).lower() not in texts]
        assert _rows(out / f"dedup_{corpus}_test.jsonl") == [test[i] for i in kept[corpus]]
    assert len(kept["synth"]) == 2000 - 111  # the count of leaking regexes
    turk = _rows(raw / "turk_test.jsonl")
    dedup, paraphrase = _rows(out / "dedup_synth_test.jsonl"), _rows(out / "paraphrase_test.jsonl")
    assert paraphrase == [turk[i] for i in kept["synth"]]  # the same rows, TURK wording
    assert [_regex(m) for m in paraphrase] == [_regex(m) for m in dedup]


def test_depth_length_and_combo_hold_out_what_they_say(splits):
    raw, out = splits
    norm = lambda s: re.sub(r"\s+", " ", s).strip()
    manifest = json.loads((out / "manifest.json").read_text())
    d, n = manifest["splits"]["depth"]["d"], manifest["splits"]["length"]["n"]
    depths = {part: [depth(parse_regex(_regex(m))) for m in _rows(out / f"depth_{part}.jsonl")]
              for part in ("train", "test")}
    assert max(depths["train"]) <= d < min(depths["test"]) and len(depths["test"]) >= 300
    assert sum(v > d + 1 for v in depths["test"]) < 300  # d is the largest threshold that leaves 300
    lengths = {part: [len(_regex(m)) for m in _rows(out / f"length_{part}.jsonl")] for part in ("train", "test")}
    assert max(lengths["train"]) <= n < min(lengths["test"]) and len(lengths["test"]) >= 300
    held = {tuple(p.split(" over ")) for p in manifest["splits"]["combo"]["held_out"]}
    assert held == {("~", "&")}  # on NL-RX-SYNTH the rarest composition with >= 300 rows
    for part, contains in (("train", False), ("test", True)):
        rows = _rows(out / f"combo_{part}.jsonl")
        assert all(bool(compositions(parse_regex(_regex(m))) & held) is contains for m in rows)
    pooled = len(_rows(raw / "synth_train.jsonl")) + len(_rows(raw / "synth_test.jsonl"))
    for split in ("depth", "length", "combo"):
        sizes = manifest["splits"][split]
        assert sizes["train"] + sizes["id_test"] + sizes["test"] == pooled and sizes["id_test"] == 300
        train, id_test = _rows(out / f"{split}_train.jsonl"), _rows(out / f"{split}_id_test.jsonl")
        # held out of training: no ID test regex or description occurs in the training file
        assert not {norm(_regex(m)) for m in id_test} & {norm(_regex(m)) for m in train}
        assert not {norm(m[-2]["content"]).lower() for m in id_test} & {norm(m[-2]["content"]).lower() for m in train}
    # the ID set is the end of the seeded shuffle of the training side: every training prefix is unchanged
    side = [m for m in _rows(raw / "synth_train.jsonl") + _rows(raw / "synth_test.jsonl")
            if depth(parse_regex(_regex(m))) <= d]
    random.Random(3).shuffle(side)
    train, id_test = _rows(out / "depth_train.jsonl"), _rows(out / "depth_id_test.jsonl")
    first = min(side.index(m) for m in id_test)
    assert first > len(side) - 2 * 300 and train[:first] == side[:first]
    assert train == [m for m in side if m not in id_test] and len(train) + len(id_test) == len(side)
    id_depths = [depth(parse_regex(_regex(m))) for m in _rows(out / "depth_id_test.jsonl")]
    assert max(id_depths) <= d  # drawn from the training side of the shift
    assert all(not compositions(parse_regex(_regex(m))) & held for m in _rows(out / "combo_id_test.jsonl"))
    assert manifest["files"] == {p.name: len(p.read_text().splitlines()) for p in out.glob("*.jsonl")}


def test_splits_are_deterministic_and_seeded(splits):
    from conftest import DATA_DIR

    _, out = splits
    again, _ = build_splits(DATA_DIR, len, seed=3)
    assert [r["record"] for r in again["depth_test.jsonl"]] == [json.loads(l) for l in
                                                                (out / "depth_test.jsonl").read_text().splitlines()]
    other, _ = build_splits(DATA_DIR, len, seed=4)
    assert [r["record"] for r in other["depth_test.jsonl"]] != [r["record"] for r in again["depth_test.jsonl"]]


def _fake_root(tmp_path, regexes):
    root = tmp_path / "data"
    (root / "llm-jepa").mkdir(parents=True)
    for name in ("synth_train", "synth_test", "turk_train", "turk_test"):
        rows = [{"messages": [{"role": "user", "content": f"{name} {i}"}, {"role": "assistant", "content": r}]}
                for i, r in enumerate(regexes)]
        (root / "llm-jepa" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_bad_input_names_the_split_or_line_and_writes_nothing(tmp_path):
    root = _fake_root(tmp_path, ["a*", "(a|"])
    with pytest.raises(DataError, match=r"synth_train.jsonl:2: the target regex does not parse"):
        build("nlrx-splits", str(root), tmp_path / "out", count_tokens=len)
    root = _fake_root(tmp_path / "x", ["a*", "b+", "~(c&d)"])
    with pytest.raises(DataError, match="split 'dedup': 0 synth test rows left; asked for at least 2"):
        build("nlrx-splits", str(root), tmp_path / "out", count_tokens=len, min_test=2)
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert parse_combo("~>&,{n,}>|") == [("~", "&"), ("{n,}", "|")]
    with pytest.raises(DataError, match="not OUTER>INNER"):
        parse_combo("~&")


def test_the_in_distribution_test_set_takes_unique_rows_from_the_end():
    from lmjepa.data.nlrx_splits import _hold_out_in_distribution

    rows = [{"regex": r, "text": x} for r, x in [("a", "one"), ("b", "two"), ("c", "three"), ("d ", "four"),
                                                 ("e", "Two"), ("d", "six"), ("f", "seven")]]
    train, held = _hold_out_in_distribution(rows, 2)
    # from the end: f is unique; d/d  (whitespace) and two/Two (case) are shared, so skipped; c is unique
    assert [r["regex"] for r in held] == ["c", "f"]
    assert [r["regex"] for r in train] == ["a", "b", "d ", "e", "d"]
    with pytest.raises(DataError, match="only 3 training-side rows .* asked for an in-distribution test set of 4"):
        _hold_out_in_distribution(rows, 4)


def test_parallel_files_become_messages_rows_with_line_errors(tmp_path, capsys):
    src, targ, out = tmp_path / "src.txt", tmp_path / "targ.txt", tmp_path / "rows.jsonl"
    src.write_text("lines with dog\nlines ending in a vowel\n")
    targ.write_text(".*dog.*\n.*[AEIOUaeiou]\n")
    assert main(["build-data", "parallel", "--src", str(src), "--targ", str(targ), "--system", "Convert.",
                 "--out", str(out)]) == 0
    assert _rows(out)[1] == [{"role": "system", "content": "Convert."},
                             {"role": "user", "content": "lines ending in a vowel"},
                             {"role": "assistant", "content": ".*[AEIOUaeiou]"}]
    targ.write_text(".*dog.*\n")
    with pytest.raises(DataError, match="has 2 lines but .*targ.txt has 1"):
        parallel_rows(src, targ, None)
    targ.write_text(".*dog.*\n\n")
    with pytest.raises(DataError, match=r"targ.txt:2: empty line"):
        parallel_rows(src, targ, None)
    targ.write_text(".*dog.*\n(a|\n")
    with pytest.raises(DataError, match=r"targ.txt:2: not a regex of the dk.brics dialect"):
        parallel_rows(src, targ, None)
    targ.write_text(".*dog.*\n\n")
    out.unlink()
    assert main(["build-data", "parallel", "--src", str(src), "--targ", str(targ), "--out", str(out)]) == 2
    assert "targ.txt:2: empty line" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("split", ["depth", "combo", "length"])
def test_the_ood_sweep_specs_train_and_test_on_their_split(split):
    from pathlib import Path

    from lmjepa.evaluation.tasks import check_config
    from lmjepa.pipeline.sweep import plan

    import yaml

    path = Path(__file__).resolve().parents[1] / "configs" / f"ood-nlrx-{split}.yaml"
    _, runs, _ = plan(path)
    assert len(runs) == 10 and {c.task for _, _, c in runs} == {f"nlrx-{split}-id"}  # ID: the run's own task
    assert yaml.safe_load(path.read_text())["evaluate_on"] == [f"nlrx-{split}"]  # OOD: evaluated after training
    assert sorted({(cell, c.jepa.lbd) for cell, _, c in runs}) == [("llm-jepa", 1.0), ("ntp", 0.0)]
    assert check_config(runs[0][2]).train_file == f"nlrx-splits/{split}_train.jsonl"


def test_the_in_distribution_spec_trains_on_synth_once_and_evaluates_out_of_distribution():
    from pathlib import Path

    import yaml

    from lmjepa.pipeline.sweep import plan

    path = Path(__file__).resolve().parents[1] / "configs" / "ood-nlrx-id.yaml"
    _, runs, _ = plan(path)
    assert len(runs) == 10 and {c.task for _, _, c in runs} == {"nlrx-synth"}
    assert sorted({(cell, c.jepa.lbd, c.jepa.view_format) for cell, _, c in runs}) == [
        ("llm-jepa-chat", 1.0, "chat"), ("ntp", 0.0, "chat")]
    assert yaml.safe_load(path.read_text())["evaluate_on"] == ["nlrx-dedup", "nlrx-paraphrase"]
