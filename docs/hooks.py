"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

``<!-- generated: config -->`` becomes the configuration reference (every field of the config dataclasses:
type, default, allowed values and the docstring under it, read with ``ast``); ``<!-- generated: cli -->``
becomes every ``lmjepa`` subcommand's ``--help``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect

SCHEMAS = [
    ("lmjepa train / evaluate / sweep: `RunConfig`", "lmjepa.training.config",
     ["RunConfig", "ModelConfig", "DataConfig", "JEPAConfig", "TrainConfig", "EvalConfig"]),
    ("lmjepa pretrain: `PretrainConfig`", "lmjepa.training.pretrain_config", ["PretrainConfig", "EncoderConfig", "HybridConfig"]),
    ("lmjepa analyze: `AnalyzeConfig`", "lmjepa.analysis.analyze", ["AnalyzeConfig"]),
]
SECTION = {"RunConfig": "", "ModelConfig": "model.", "DataConfig": "data.", "JEPAConfig": "jepa.",
           "TrainConfig": "train.", "EvalConfig": "eval."}


def _field_docs(cls) -> dict[str, str]:
    """The string literal right under each annotated field of ``cls`` (its attribute docstring)."""
    tree = ast.parse(inspect.getsource(cls))
    body, docs = tree.body[0].body, {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(getattr(after, "value", None), ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        return "(section)" if dataclasses.is_dataclass(value) else repr(value)
    return "(required)"


def config_reference() -> str:
    lines = ["Every key a YAML config may set, generated from the config dataclasses (`lmjepa/training/config.py` "
             "and beside it). Unknown keys are refused with the closest known key; `choices` are checked at load.", ""]
    for title, module_name, names in SCHEMAS:
        module = importlib.import_module(module_name)
        lines += [f"## {title}", ""]
        for name in names:
            cls = getattr(module, name)
            prefix = SECTION.get(name, "" if name.endswith("PretrainConfig") or name == "AnalyzeConfig" else
                                 f"{name.removesuffix('Config').lower()}.")
            docs = _field_docs(cls)
            lines += [f"### `{name}`", "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
            for field in dataclasses.fields(cls):
                allowed = ", ".join(map(repr, field.metadata.get("choices", ()))) or ""
                text = docs.get(field.name, "").replace("|", "\\|")
                kind = str(field.type).replace("|", "\\|")
                default = _default(field).replace("|", "\\|")
                lines.append(f"| `{prefix}{field.name}` | `{kind}` | `{default}` | {allowed} | {text} |")
            lines.append("")
    return "\n".join(lines)


def cli_reference() -> str:
    from lmjepa.cli.main import build_parser

    parser = build_parser()
    lines = ["Generated from the argument parser (`lmjepa/cli/main.py`). A config or spec argument is a file or "
             "the name of a packaged preset (`lmjepa presets`).", "", "```text", parser.format_help(), "```", ""]
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in action.choices.items():
        lines += [f"## `lmjepa {name}`", "", "```text", sub.format_help(), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- generated: config -->" in markdown:
        markdown = markdown.replace("<!-- generated: config -->", config_reference())
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", cli_reference())
    return markdown
