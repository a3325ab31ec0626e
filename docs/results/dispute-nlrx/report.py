"""Write the dispute's report from its records: ``report.md``, ``interaction.png``, the generated answer in
this folder's README and in the project README (between ``<!-- dispute-answer -->`` markers), and the progress
line in this folder's README (between ``<!-- dispute-progress -->`` markers). ``queue.sh`` runs it before each
commit of new rows, so a committed store and its report always agree.

    python docs/results/dispute-nlrx/report.py           # write
    python docs/results/dispute-nlrx/report.py --check   # exit 1 if anything committed differs (tests run it)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from lmjepa.analysis.factorial import Design, Reference, analyse, answer, load, plot, progress, render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
COMMAND = "python docs/results/dispute-nlrx/report.py"
DESIGN = Design(base_a="ntp", treated_a="llm-jepa", base_b="ntp-official", treated_b="llm-jepa-official")
MARK = re.compile(r"(<!-- dispute-answer -->\n).*?(<!-- /dispute-answer -->)", re.S)
PROGRESS = re.compile(r"(<!-- dispute-progress -->\n).*?(<!-- /dispute-progress -->)", re.S)
SPEC = ROOT / "configs" / "dispute-nlrx.yaml"
# Earlier reports of LLM-JEPA − NTP on NL-RX-SYNTH exact match (../shared/RESOURCES.md; PREREGISTRATION.md).
REFERENCES = (
    Reference("the paper", 14.17, "Llama-3.2-1B-Instruct, official code, 57.29 → 71.46 %"),
    Reference("a replication of the official code", 18.3, "Llama-3.2-1B-Instruct, 53.52 → 71.77 %, paired over 5 "
              "seeds; both arms contain the target ≈ 85 % of the time"),
    Reference("the JEPA audit", 0.52, "its own harness, p = 0.28"),
)
SCOPE = "SmolLM2-135M-Instruct, 280 steps of 8 rows, fp32 on CPU, 500 test rows"
LINK = {HERE / "README.md": "report.md", ROOT / "README.md": "docs/results/dispute-nlrx/report.md"}


def generated() -> tuple:
    """(report text or None, the answer's lines, the analysis or None) from the records as they are now."""
    store = HERE / "runs" / "results.jsonl"
    try:
        result = analyse(DESIGN, HERE / "runs") if store.is_file() else None
    except ValueError:  # fewer than 2 complete seed blocks
        result = None
    if result is None:
        return None, ["No result yet: fewer than 2 complete seed blocks of the pre-registered 2 × 2 are in "
                      "(`docs/results/dispute-nlrx/runs/results.jsonl`)."], None
    return render(DESIGN, result, COMMAND, REFERENCES, SCOPE), answer(DESIGN, result), result


def progress_line() -> str:
    """The README's progress line, from the store and the spec's seeds and cells."""
    spec = yaml.safe_load(SPEC.read_text())
    store = HERE / "runs" / "results.jsonl"
    rows = load(store)[1] if store.is_file() else []
    extra = tuple(c for c in spec["cells"] if c not in DESIGN.cells)
    return f"Progress (generated from `runs/results.jsonl`): {progress(DESIGN, rows, spec['seeds'], extra)}"


def main(check: bool = False) -> int:
    made = generated()
    report, lines = made[0], made[1]
    differs = []
    if report is not None:
        if check:
            old = (HERE / "report.md").read_text() if (HERE / "report.md").is_file() else None
            differs += [] if old == report else ["report.md"]
        else:
            (HERE / "report.md").write_text(report)
            plot(DESIGN, made[2], HERE / "interaction.png")
    for readme, link in LINK.items():
        text = readme.read_text()
        block = "\n".join(lines) + (f" [Report]({link})." if report is not None else "") + "\n"
        new = MARK.sub(lambda m: m.group(1) + block + m.group(2), text)
        if readme == HERE / "README.md":
            if not PROGRESS.search(text):
                differs.append(f"{readme.relative_to(ROOT)}: no <!-- dispute-progress --> block")
            new = PROGRESS.sub(lambda m: m.group(1) + progress_line() + "\n" + m.group(2), new)
        if new == text and not MARK.search(text):
            differs.append(f"{readme.relative_to(ROOT)}: no <!-- dispute-answer --> block")
        elif new != text:
            if check:
                differs.append(str(readme.relative_to(ROOT)))
            else:
                readme.write_text(new)
    if differs:
        print(("differs from the records: " if check else "") + ", ".join(differs))
    return 1 if differs and check else 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))
