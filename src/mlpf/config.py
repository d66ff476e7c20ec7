"""Configuration: one JSON schema, validated before anything runs, with defaults filled in.

The schema (`config.schema.yaml` in this package) is the single source of truth; the Snakemake workflow and
the `mlpf` command both validate against it. Errors are one line naming the file, the key and the problem.
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mlpf.errors import ConfigError

SECTIONS = ("fastsim", "zenodo", "key4hep", "dataset", "model", "training", "evaluation")


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


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate a whole configuration and return a copy with defaults filled in.

    Raises ConfigError with one line: `<source>: <key path>: <problem>`.
    """
    return _validate(config, load_schema(), source)


def section_schema(name: str) -> dict[str, Any]:
    """The schema of one top-level section, with `$defs` attached so references resolve."""
    root = load_schema()
    if name not in root["properties"]:
        raise ConfigError(f"unknown config section '{name}'")
    sub = dict(root["properties"][name])
    sub["$defs"] = root.get("$defs", {})
    return sub


def validate_section(name: str, settings: dict[str, Any] | None, source: str = "config") -> dict[str, Any]:
    """Validate one section (e.g. the `fastsim` block a rule passes on) and fill its defaults."""
    return _validate({} if settings is None else settings, section_schema(name), f"{source}: {name}")


def _validate(instance: dict[str, Any], schema: dict[str, Any], source: str) -> dict[str, Any]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        raise ConfigError(_describe(errors[0], schema), path=source)
    return _fill_defaults(copy.deepcopy(instance), schema, schema)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file, validate it and fill defaults."""
    path = Path(path)
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
    return validate_config(raw, source=str(path))


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
