"""Write the dispute's report from its records: ``report.md``, ``interaction.png``, and the generated answer
in this folder's README and in the project README (between ``<!-- dispute-answer -->`` markers).

    python docs/results/dispute-nlrx/report.py           # write
    python docs/results/dispute-nlrx/report.py --check   # exit 1 if anything committed differs (tests run it)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lmjepa.analysis.factorial import Design, analyse, answer, plot, render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
COMMAND = "python docs/results/dispute-nlrx/report.py"
DESIGN = Design(base_a="ntp", treated_a="llm-jepa", base_b="ntp-official", treated_b="llm-jepa-official")
MARK = re.compile(r"(<!-- dispute-answer -->\n).*?(<!-- /dispute-answer -->)", re.S)
LINK = {HERE / "README.md": "report.md", ROOT / "README.md": "docs/results/dispute-nlrx/report.md"}


def generated() -> tuple[str | None, list[str]]:
    """(report text or None, the answer's lines) from the records as they are now."""
    store = HERE / "runs" / "results.jsonl"
    try:
        result = analyse(DESIGN, HERE / "runs") if store.is_file() else None
    except ValueError:  # fewer than 2 complete seed blocks
        result = None
    if result is None:
        return None, ["No result yet: fewer than 2 complete seed blocks of the pre-registered 2 × 2 are in "
                      "(`docs/results/dispute-nlrx/runs/results.jsonl`)."]
    return render(DESIGN, result, COMMAND), answer(DESIGN, result), result


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
