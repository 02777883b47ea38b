"""Contact attributes: a flat object of short values that broadcast placeholders may name (pure, no ORM)."""

from __future__ import annotations

import math
import re
from typing import Any

# The same names a `{{ placeholder }}` accepts.
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ATTRIBUTES = 50
MAX_VALUE_CHARS = 500
MAX_INTEGER = 2**53  # beyond it a JSON number loses precision in JavaScript clients


def attribute_errors(value: Any, *, removals: bool) -> list[str]:
    """Why `value` is not a valid attributes object (empty: it is). With `removals`, null values
    are allowed (they mean: remove this attribute)."""
    if not isinstance(value, dict):
        return ["Give the attributes as a JSON object of name → string, number or boolean."]
    if len(value) > MAX_ATTRIBUTES:
        return [f"At most {MAX_ATTRIBUTES} attributes."]
    errors = []
    for name, item in value.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME.match(name):
            errors.append(f"{str(name)[:70]!r}: a name is letters, digits and underscores, not starting with a digit, "
                          f"at most 64 characters.")
        elif item is None:
            if not removals:
                errors.append(f"{name}: null removes an attribute, which only PATCH does.")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_INTEGER:
                errors.append(f"{name}: a whole number between -2^53 and 2^53.")
        elif isinstance(item, float):
            if not math.isfinite(item):
                errors.append(f"{name}: a finite number.")
        elif isinstance(item, str):
            if len(item) > MAX_VALUE_CHARS:
                errors.append(f"{name}: at most {MAX_VALUE_CHARS} characters.")
            elif "\x00" in item:
                errors.append(f"{name}: text may not contain the NUL character.")
        else:
            errors.append(f"{name}: a string, number or boolean (no nested objects or lists).")
    return errors


def attributes_merge(current: dict | None, changes: dict) -> dict:
    """`current` with `changes` applied: each key set to its value, a key given null removed."""
    merged = dict(current or {}) if isinstance(current, dict) else {}
    for name, item in changes.items():
        if item is None:
            merged.pop(name, None)
        else:
            merged[name] = item
    return merged
