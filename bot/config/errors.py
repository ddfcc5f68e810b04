"""How a configuration problem reaches a person: one error type, one way to render pydantic's.

- ConfigError: a problem a person must fix; the message names the field, the value and the fix
- lookup: the value at a pydantic error location (to show what was given)
- problems: one "  - where: given: reason" line per pydantic error
- explain: the whole message for a file: a header, the problems, what to do
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

Loc = tuple[int | str, ...]


class ConfigError(Exception):
    """A configuration problem a person must fix; the message names field, value and fix."""


def format_location(loc: Loc, prefix: str = "") -> str:
    """`rules[0].threshold_usd` from ("rules", 0, "threshold_usd"), after `prefix`."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def lookup(data: Any, loc: Loc) -> tuple[bool, Any]:
    """(found, value) at `loc` inside `data`."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def problems(
    error: ValidationError,
    data: Any,
    prefix: str = "",
    where: Callable[[Loc], str] | None = None,
) -> list[str]:
    """One line per problem: where (after `prefix`, or as `where` names it), what, why."""
    lines = []
    for item in error.errors():
        loc: Loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function"))
        )
        place = where(loc) if where is not None else format_location(loc, prefix)
        found, value = lookup(data, loc)
        given = f"value {value!r}" if found else "missing or not allowed here"
        reason = item["msg"]
        if item["type"] == "extra_forbidden" and loc:
            given = f"unknown {'parameter' if prefix.endswith('params') else 'key'} {loc[-1]!r}"
            reason = "not a setting liqguard knows; check the spelling against the docs"
        lines.append(f"  - {place}: {given}: {reason}")
    return lines


def explain(error: ValidationError, data: Any, source: str) -> str:
    """The message for an invalid file: header, one line per problem, what to do."""
    lines = [f"{source}: invalid configuration ({error.error_count()} problem(s))"]
    lines += problems(error, data)
    lines.append(
        "Fix the file (every setting: docs/configuration.md, linked from the README) and start "
        "again."
    )
    return "\n".join(lines)
