"""Configuration machinery: dataclass schemas loaded from YAML, with ``section.key=value`` overrides,
checked when loaded — before any model or data is touched.

The schemas sit beside the code that uses them: ``lmjepa.training.config.RunConfig`` (``lmjepa train``,
``evaluate``, ``sweep``), ``lmjepa.training.pretrain_config.PretrainConfig`` (``lmjepa pretrain``),
``lmjepa.analysis.analyze.AnalyzeConfig`` (``lmjepa analyze``). A schema is a dataclass deriving from
``ConfigBase``; a field documents itself in the docstring under it, and a choice-valued field says so
with ``choice(default, allowed)``: a value outside ``allowed`` stops the load with one line naming the
key, the value and the allowed values. An unknown key is refused with the closest known key suggested.

Paths written in a YAML file (fields listed in the schema's ``PATH_FIELDS``) are relative to the
file's folder, so a config works from any working directory; paths given on the command line
(``--set``) are relative to the working directory, as usual.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import MISSING, asdict, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def choice(default, allowed, **kwargs):
    """A dataclass field whose value must be one of ``allowed`` (None is allowed only if listed)."""
    return field(default=default, metadata={"choices": tuple(allowed)}, **kwargs)


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class ConfigBase:
    """``to_dict``, dotted ``with_overrides`` and choice checks for a top-level config dataclass.

    Subclasses may set ``PATH_FIELDS`` (dotted keys resolved against the YAML file's folder) and
    override ``upgrade`` (map an older layout onto the current one) and ``validate`` (checks that
    involve more than one field).
    """

    PATH_FIELDS: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def upgrade(cls, values: dict) -> dict:
        return values

    def validate(self) -> None:
        """Raise ConfigError if the config is inconsistent (the per-field choices are checked already)."""

    def without_variants(self):
        """A copy with ``variants`` emptied: the base that one variant, sweep cell or audit cell overrides (a
        variant is validated against the base alone, never against its siblings). Configs without a
        ``variants`` field are returned unchanged."""
        return dataclasses.replace(self, variants={}) if getattr(self, "variants", None) else self

    def with_overrides(self, overrides: dict[str, Any]):
        """A copy with dotted-key overrides applied (``{"jepa.lbd": 0.0}``).

        Raises ConfigError on an unknown key (suggesting the closest) or a value outside a field's choices.
        """
        data = self.to_dict()
        for key, value in overrides.items():
            node = data
            *parents, leaf = key.split(".")
            for depth, part in enumerate(parents):
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown config key {key!r}{_suggest(key, _dotted_keys(self.to_dict()))}")
                node = node[part]
            if leaf not in node and not _is_free_dict(parents):
                raise ConfigError(f"unknown config key {key!r}{_suggest(key, _dotted_keys(self.to_dict()))}")
            node[leaf] = value
        return from_dict(data, type(self))


def _dotted_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        keys.append(prefix + key)
        if isinstance(value, dict) and prefix.count(".") < 1:
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def _is_free_dict(parents: list[str]) -> bool:
    """Keys under these dicts are not fixed by a dataclass (e.g. ``train.extra.<any>``)."""
    return len(parents) >= 2 or (bool(parents) and parents[-1] in {"variants", "tasks", "models"})


def _as_float(value, key: str) -> float:
    """YAML 1.1 reads ``2e-5`` as a string; accept it (and ints) where a float is expected."""
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"config key {key!r} expects a number, got {value!r}") from None


_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list",
          "dict": "a mapping"}


def _type_ok(value, name: str) -> bool:
    base = name.split("[", 1)[0].strip()
    if base == "None":
        return value is None
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "bool":
        return isinstance(value, bool)
    if base == "str":
        return isinstance(value, str)
    if base == "list":
        inner = name[len("list["):-1] if name.startswith("list[") else ""
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value) if inner else isinstance(value, list)
    if base == "dict":
        return isinstance(value, dict)
    return True  # Any, or a type this checker does not know


def _check_type(value, annotation: str, key: str) -> None:
    """Raise ConfigError unless ``value`` fits the field's annotation (``int | None``, ``list[str]`` …): no ``"8"``,
    ``8.5`` or ``[8]`` where an int is meant, no ``yes`` string where a bool is."""
    options = [part.strip() for part in annotation.split("|")]
    if any(_type_ok(value, option) for option in options):
        return
    plural = {"int": "integers", "float": "numbers", "str": "strings", "bool": "true/false values"}

    def describe(option: str) -> str:
        if option.startswith("list[") and option[5:-1] in plural:
            return f"a list of {plural[option[5:-1]]}"
        return _TYPES.get(option.split("[", 1)[0], "null" if option == "None" else option)

    wanted = " or ".join(describe(o) for o in options)
    raise ConfigError(f"config key {key!r} expects {wanted}, got {value!r}")


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"config key {where!r} expects a mapping, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    for name in values:
        if name not in known:
            key = f"{where}.{name}" if where else name
            raise ConfigError(f"unknown config key {key!r}{_suggest(name, known)}")
    kwargs = {}
    for name, value in values.items():
        spec, key = known[name], f"{where}.{name}" if where else name
        section = spec.default_factory if spec.default_factory is not MISSING else None
        if section is not None and is_dataclass(section):  # a nested section: build it from its mapping
            value = _build(section, value or {}, key)
        elif "float" in str(spec.type) and not isinstance(value, bool) and isinstance(value, (int, str)):
            value = _as_float(value, key)
        if section is None or not is_dataclass(section):  # a nested section was checked by its own _build
            _check_type(value, str(spec.type), key)
        allowed = spec.metadata.get("choices")
        if allowed is not None and value not in allowed:
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {list(allowed)}")
        kwargs[name] = value
    return cls(**kwargs)


def from_dict(values: dict, cls: type):
    """Build the schema ``cls`` from a nested mapping and validate it.

    Raises ConfigError on an unknown key, a value outside its choices or an inconsistent config.
    """
    config = _build(cls, cls.upgrade(values), "")
    config.validate()
    return config


def _resolve_paths(values: dict, cls, folder: Path) -> dict:
    """Relative paths of ``cls.PATH_FIELDS`` in ``values`` made relative to ``folder`` (absolute)."""
    for dotted in getattr(cls, "PATH_FIELDS", ()):
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(leaf), (str, list)):
            continue
        items = node[leaf] if isinstance(node[leaf], list) else [node[leaf]]
        resolved = [str((folder / v).resolve()) if _relative_path(v, folder) else v for v in items]
        node[leaf] = resolved if isinstance(node[leaf], list) else resolved[0]
    return values


def _relative_path(value, folder: Path) -> bool:
    """A path relative to the config file: it starts with ``.`` or names something that exists in
    ``folder``. Keywords (``offline-corpus``), hub ids (``org/name``), ``~`` and absolute paths are left
    as written."""
    if not isinstance(value, str) or not value or value.startswith("~") or Path(value).is_absolute():
        return False
    return value.startswith(".") or (folder / value).exists()


PRESETS = Path(__file__).with_name("presets")
"""The packaged presets (``lmjepa presets`` lists them); ``configs/`` in a source checkout links here."""


def find_config(path_or_name: str | Path) -> Path:
    """A config or spec file: the path itself if it exists, else the packaged preset of that name
    (``nlrx-synth-smollm2``, ``paper/llama-3.2-1b-instruct``; ``.yaml`` optional).

    Raises ConfigError naming the path and the closest preset if neither exists.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    names = preset_names()
    name = str(path_or_name).removesuffix(".yaml")
    if name in names:
        return PRESETS / f"{name}.yaml"
    raise ConfigError(f"{path}: config file not found, and no preset has that name{_suggest(name, names)} "
                      "(`lmjepa presets` lists them)")


def preset_names() -> list[str]:
    """Every packaged preset, as ``lmjepa train`` accepts it (relative to the presets folder, no suffix)."""
    return sorted(str(p.relative_to(PRESETS).with_suffix("")) for p in PRESETS.rglob("*.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (YAML would keep the last silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} (first on line "
                              f"{seen[key]}); YAML would silently keep only the last")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: str | Path) -> dict:
    """The mapping in the YAML file ``path``.

    Raises ConfigError naming the file for a missing file, invalid YAML, a duplicate key (with its line), an
    empty document (it would silently be every default) or a document that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if values is None:
        raise ConfigError(f"{path}: is empty; it expects a mapping of keys (see `lmjepa presets` for examples)")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expects a mapping of keys, got {type(values).__name__}")
    return values


def load_config(path: str | Path, overrides: dict[str, Any] | None = None, *, cls: type):
    """Load a YAML config of schema ``cls``, resolve its relative paths against the
    file's folder, apply dotted overrides and check every choice.

    Raises ConfigError naming the file for a missing file, bad YAML, an unknown key or a bad value.
    """
    path = find_config(path)
    values = read_yaml(path)
    try:
        config = from_dict(_resolve_paths(cls.upgrade(values), cls, path.parent), cls)
        return config.with_overrides(overrides or {})
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"jepa.lbd=0.5"`` → ``("jepa.lbd", 0.5)`` (the value is read as YAML). Raises ConfigError."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({err})") from None


def save_config(config: ConfigBase, path: str | Path) -> None:
    """Write any ``ConfigBase`` as YAML (atomically); ``load_config(path, cls=type(config))`` reads it back."""
    from .io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
