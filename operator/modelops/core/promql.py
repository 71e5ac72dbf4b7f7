"""PromQL query templates with their variables filled in safely (pure).

A template names variables as `{{ name }}`. Inside a double-quoted string (a label matcher's
value) a value is escaped as PromQL string content, so a hostile model or namespace name stays
one string. Outside a string a value can only be a plain token (a duration, a number, a name),
anything else is refused: no value can change the query's structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

VARIABLES = (
    "namespace",
    "deployment",
    "isvc",
    "version",
    "stableVersion",
    "service",
    "revision",
    "window",
)
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9]*)\s*\}\}")
PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_:.\-]+")


@dataclass(frozen=True)
class TemplateError:
    message: str


def escape_string(value: str) -> str:
    """`value` as the content of a double-quoted PromQL string."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def _quoted_spans(template: str) -> list[tuple[int, int]]:
    """(start, end) of every double-quoted string in the template, escapes honoured."""
    spans, start, index = [], -1, 0
    while index < len(template):
        char = template[index]
        if start >= 0 and char == "\\":
            index += 2
            continue
        if char == '"':
            if start < 0:
                start = index
            else:
                spans.append((start, index))
                start = -1
        index += 1
    return spans


def render(template: str, values: Mapping[str, str], *, field: str) -> str | TemplateError:
    """The query with every variable filled in; `field` names the spec field in errors."""
    spans = _quoted_spans(template)
    pieces: list[str] = []
    position = 0
    for match in PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in VARIABLES:
            return TemplateError(
                f"{field}: unknown variable {{{{ {name} }}}}; use one of "
                + ", ".join(f"{{{{ {v} }}}}" for v in VARIABLES)
            )
        if name not in values:
            return TemplateError(f"{field}: {{{{ {name} }}}} has no value in this context")
        value = values[name]
        quoted = any(start < match.start() and match.end() <= end for start, end in spans)
        if quoted:
            filled = escape_string(value)
        elif PLAIN_TOKEN.fullmatch(value):
            filled = value
        else:
            return TemplateError(
                f"{field}: {{{{ {name} }}}} is outside a quoted string and its value "
                f"{value!r} is not a plain token; put the variable inside quotes "
                '(label="{{ ' + name + ' }}")'
            )
        pieces += [template[position : match.start()], filled]
        position = match.end()
    pieces.append(template[position:])
    return "".join(pieces)
