"""Render the configuration schema as the key reference in config/README.md.

The table between the markers in config/README.md is generated from the schema (`mlpf config docs --update`)
and a test checks it is current, so the documentation cannot drift from what the workflow accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpf.config import load_schema

BEGIN = "<!-- BEGIN generated key reference: mlpf config docs --update -->"
END = "<!-- END generated key reference -->"


def _allowed(node: dict[str, Any], root: dict[str, Any]) -> str:
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if node.get("type") == "array" and "items" in node:
        return "list of " + _allowed(node["items"], root)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    bounds = []
    for key, symbol in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            bounds.append(f"{symbol} {node[key]}")
    kind = node.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _rows(node: dict[str, Any], root: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            rows.extend(_rows(sub, root, f"{path}."))
            continue
        default = json.dumps(sub.get("default"))
        description = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
        rows.append(f"| `{path}` | {_allowed(sub, root)} | `{default}` | {description} |")
    return rows


def key_reference() -> str:
    """The Markdown table of every configuration key."""
    root = load_schema()
    lines = ["| key | allowed values | default | meaning |", "|---|---|---|---|"]
    lines.extend(_rows(root, root, ""))
    return "\n".join(lines)


def update_readme(path: str | Path) -> bool:
    """Rewrite the generated region of `path`; return True if it changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{key_reference()}\n{END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
