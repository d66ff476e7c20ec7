"""Configuration: one JSON schema, validated before anything runs, with defaults filled in.

The schema (`config.schema.yaml` in this package) is the single source of truth; the Snakemake workflow and
the `mlpf` command both validate against it. Rules that relate two keys, which a JSON schema cannot express
(a range whose low end must stay below its high end), are `CROSS_FIELD_RULES` here and run in the same
validation, so the workflow checks them before any job runs. Errors are one line naming the file (or
`--config` for a value given on Snakemake's command line), the key and the problem.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mlpf.errors import ConfigError

SECTIONS = ("fastsim", "zenodo", "key4hep", "dataset", "model", "training", "inference", "evaluation")


@cache
def load_schema() -> dict[str, Any]:
    """The configuration schema as a dict."""
    text = resources.files("mlpf").joinpath("config.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """Insert schema defaults for absent keys, recursively (after validation, so types are known)."""
    if "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return instance
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            instance[key] = _fill_defaults(instance[key], sub, root)
    return instance


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _describe(error: jsonschema.ValidationError, schema_node: dict[str, Any] | None) -> str:
    """Turn a jsonschema error into a short, actionable sentence."""
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted((error.schema.get("properties") or {}).keys())
        unknown = sorted(set(error.instance) - set(allowed))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        prefix = "" if where == "<top level>" else f"{where}: "
        return f"{prefix}unknown key {', '.join(hints)}; allowed: {', '.join(allowed)}"
    return f"{where}: {error.message}"


# A rule relating keys of one section: (section with defaults filled) -> None, or (the keys it concerns, first
# the one named in the error, and what is wrong).
CrossFieldRule = Callable[[dict[str, Any]], "tuple[tuple[str, ...], str] | None"]


def _range_rule(low_key: str, high_key: str) -> CrossFieldRule:
    def rule(section: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
        low, high = section[low_key], section[high_key]
        if low < high:
            return None
        return (
            low_key,
            high_key,
        ), f"must be below {high_key} ({low} >= {high}: the range is inverted or empty)"

    return rule


def _heads_divide_width(model: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
    """The transformer splits `width` into `num_heads` equal heads (model/layers.py SelfAttentionLayer)."""
    if model["type"] != "transformer" or model["width"] % model["num_heads"] == 0:
        return None
    return (
        "width",
        "num_heads",
    ), f"must be a multiple of num_heads ({model['width']} / {model['num_heads']})"


def _increasing_edges(key: str) -> CrossFieldRule:
    def rule(evaluation: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
        edges = evaluation[key]
        if all(a < b for a, b in itertools.pairwise(edges)):
            return None
        return (key,), f"bin edges must be strictly increasing, got {edges}"

    return rule


def _per_sample_shards_within_train(shards: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
    """A sample's own training-shard count may not reach the held-out shards (shard indices from `train` on)."""
    beyond = {sample: n for sample, n in shards["train_per_sample"].items() if n > shards["train"]}
    if not beyond:
        return None
    return (
        "train_per_sample",
        "train",
    ), f"{beyond} exceed train ({shards['train']}): those shards are the held-out ones"


CROSS_FIELD_RULES: dict[str, tuple[CrossFieldRule, ...]] = {
    "shards": (_per_sample_shards_within_train,),
    "fastsim": (_range_rule("gun_energy_min", "gun_energy_max"),),
    "key4hep": (_range_rule("gun_momentum_min", "gun_momentum_max"),),
    "model": (_heads_divide_width,),
    "evaluation": tuple(
        _increasing_edges(k) for k in ("jet_pt_bins", "met_bins", "momentum_bins", "energy_bins")
    ),
}


@dataclass(frozen=True)
class Problem:
    """One configuration error: the sentence shown and the key paths it concerns (to tell who set them)."""

    message: str
    keys: tuple[tuple[str, ...], ...]


def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    path = tuple(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema.get("properties") or {}).keys())
        keys = tuple((*path, str(k)) for k in sorted(set(error.instance) - allowed))
        return Problem(_describe(error, None), keys)
    return Problem(_describe(error, None), (path,))


def _cross_field_problem(filled: dict[str, Any], sections: dict[str, tuple[str, ...]]) -> Problem | None:
    """The first broken cross-field rule; `sections` maps a section name to its key path in `filled`."""
    for name, prefix in sections.items():
        section = filled
        for part in prefix:
            section = section[part]
        for rule in CROSS_FIELD_RULES.get(name, ()):
            broken = rule(section)
            if broken is not None:
                keys, message = broken
                where = ".".join((*prefix, keys[0]))
                return Problem(f"{where}: {message}", tuple((*prefix, k) for k in keys))
    return None


def _check(
    instance: dict[str, Any], schema: dict[str, Any], sections: dict[str, tuple[str, ...]]
) -> tuple[dict[str, Any], Problem | None]:
    """(the instance with defaults filled, the first problem or None): schema first, then cross-field rules."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        return instance, _schema_problem(errors[0])
    filled = _fill_defaults(copy.deepcopy(instance), schema, schema)
    return filled, _cross_field_problem(filled, sections)


def _whole_config_sections() -> dict[str, tuple[str, ...]]:
    return {name: (name,) for name in CROSS_FIELD_RULES}


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate a whole configuration and return a copy with defaults filled in.

    Raises ConfigError with one line: `<source>: <key path>: <problem>`.
    """
    filled, problem = _check(config, load_schema(), _whole_config_sections())
    if problem is not None:
        raise ConfigError(problem.message, path=source)
    return filled


def section_schema(name: str) -> dict[str, Any]:
    """The schema of one top-level section, with `$defs` attached so references resolve."""
    root = load_schema()
    if name not in root["properties"]:
        raise ConfigError(f"unknown config section '{name}'")
    sub = dict(root["properties"][name])
    sub["$defs"] = root.get("$defs", {})
    return sub


def schema_default(section: str, key: str) -> Any:
    """The schema's default of one key of a section (e.g. a code default that must agree with the config's)."""
    return copy.deepcopy(section_schema(section)["properties"][key]["default"])


def validate_section(name: str, settings: dict[str, Any] | None, source: str = "config") -> dict[str, Any]:
    """Validate one section (e.g. the `fastsim` block a rule passes on) and fill its defaults."""
    instance = {} if settings is None else settings
    filled, problem = _check(instance, section_schema(name), {name: ()})
    if problem is not None:
        raise ConfigError(problem.message, path=f"{source}: {name}")
    return filled


def _schema_node(schema: dict[str, Any], root: dict[str, Any], path: Sequence[str]) -> dict[str, Any] | None:
    """The schema of the value at `path` (through `properties`, a mapping's `additionalProperties` and `$ref`),
    or None if it has none."""
    node: dict[str, Any] | None = schema
    for part in path:
        if node is not None and "$ref" in node:
            node = _resolve(node["$ref"], root)
        node = node or {}
        extra = node.get("additionalProperties")
        node = node.get("properties", {}).get(part, extra if isinstance(extra, dict) else None)
    if node is not None and "$ref" in node:
        node = _resolve(node["$ref"], root)
    return node


def _from_text(text: str, node: dict[str, Any] | None) -> Any:
    """`text` as the number, boolean or null the schema asks for; unchanged if it asks for a string or fails."""
    types = node.get("type") if node else None
    types = [types] if isinstance(types, str) else (types or [])
    if not types or "string" in types:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    accepted = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }
    return value if any(accepted.get(t, False) for t in types) else text


def _coerce(value: Any, node: dict[str, Any] | None, root: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _from_text(value, node)
    if isinstance(value, list) and node is not None:
        items = node.get("items")
        items = _resolve(items["$ref"], root) if isinstance(items, dict) and "$ref" in items else items
        return [_coerce(v, items, root) for v in value]
    if isinstance(value, Mapping):
        return {
            k: _coerce(v, _schema_node(node, root, [k]) if node is not None else None, root)
            for k, v in value.items()
        }
    return value


def _leaf_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, (*prefix, str(key)))
        else:
            yield (*prefix, str(key))


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` merged into a copy of `base`, key by key (as Snakemake merges `--config` into the files)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
    return out


def _concerns(problem: Problem, paths: list[tuple[str, ...]]) -> bool:
    """Whether a problem is about keys at, above or below one of `paths` (key paths an override sets)."""
    return any(path[: len(key)] == key or key[: len(path)] == path for key in problem.keys for path in paths)


def validate_workflow_config(
    config: dict[str, Any], files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate the configuration Snakemake assembled from config files and `--config` overrides.

    Snakemake reads a nested override (`--config 'training={"epochs": 2}'`) with YAML's base loader, which
    makes every value a string; those strings become the numbers, booleans or nulls the schema asks for. An
    error in a key that an override sets names `--config` instead of the config files.
    """
    overrides = overrides or {}
    schema = load_schema()
    config = _merge(config, _coerce(overrides, schema, schema))
    filled, problem = _check(config, schema, _whole_config_sections())
    if problem is None:
        return filled
    from_files = ", ".join(map(str, files)) or "config"
    source = "--config" if _concerns(problem, list(_leaf_paths(overrides))) else from_files
    raise ConfigError(problem.message, path=source)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file ({exc.strerror})", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}", path=path) from None
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of keys", path=path)
    return raw


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Read YAML config files, each merged over the ones before it (as Snakemake layers `--configfile`s),
    validate the result and fill defaults."""
    if not paths:
        raise ValueError("load_config needs at least one config file")
    raw: dict[str, Any] = {}
    for path in map(Path, paths):
        raw = _merge(raw, _read_yaml(path))
    return validate_config(raw, source=", ".join(map(str, paths)))


def settings_from_cli(name: str, settings_json: str | None, config_path: str | None) -> dict[str, Any]:
    """Resolve one section for a CLI stage: from `--settings` JSON (what rules pass) or a `--config` file."""
    if settings_json is not None:
        try:
            settings = json.loads(settings_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings is not valid JSON ({exc.msg})") from None
        return validate_section(name, settings, source="--settings")
    if config_path is not None:
        return load_config(config_path)[name]
    return validate_section(name, {}, source="defaults")
