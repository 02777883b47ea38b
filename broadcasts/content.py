"""Broadcast content: `{{ name }}` and `{{ name | "fallback" }}` placeholders, WhatsApp template checks (pure, no ORM).

Content is parsed once into segments (literal text and placeholders) by a single forward scan,
so the cost is linear in its length; rendering for a recipient only joins the segments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# One placeholder at a given `{{`. Every repeat is of one character (or one fixed two-character
# escape) and is followed by what it cannot match, so an attempt never backtracks: linear time.
PLACEHOLDER = re.compile(r'\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]{0,63})[ \t]*(?:\|[ \t]*"((?:[^"\\]|\\["\\]){0,200})"[ \t]*)?\}\}')
_UNESCAPE = re.compile(r'\\(["\\])')
_NAME_AT = re.compile(r"[A-Za-z0-9_]+")
_SPACES_AT = re.compile(r"[ \t]*")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
BUILTINS = ("phone", "country")

# Twilio Messages API: "The Body parameter for an outgoing message can be up to 1,600 characters"
# (https://www.twilio.com/docs/api/errors/21617).
MAX_SMS_CHARS = 1600
MAX_NAME_CHARS = 64
MAX_FALLBACK_CHARS = 200
# Our own bounds on a WhatsApp template (a sent template has one header, one body and at most ten
# buttons, each a component: Meta's template components reference); they keep every check cheap.
MAX_TEMPLATE_BYTES = 16_384
MAX_TEMPLATE_COMPONENTS = 20
MAX_COMPONENT_PARAMETERS = 50
MAX_TEMPLATE_DEPTH = 8


class PlaceholderError(ValueError):
    """A `{{` that does not open a well-formed placeholder; the message says where and what was expected."""


class MissingAttributes(Exception):
    """The recipient lacks these placeholders' values and they have no fallback."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(names))
        self.names = names


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str
    fallback: str | None = None


Segments = tuple  # of str (literal text) and Placeholder


def _placeholder_at(text: str, start: int) -> tuple[Placeholder | None, int | str]:
    """The placeholder whose `{{` is at `start` and the index just after its `}}`, or (None, why not).

    The same grammar as PLACEHOLDER, step by step, to say what is wrong (tests check they agree)."""
    i = _SPACES_AT.match(text, start + 2).end()
    match = _NAME_AT.match(text, i)
    if match is None or match.group()[0].isdigit():
        return None, "expected a name such as {{ first_name }}."
    name = match.group()
    if len(name) > MAX_NAME_CHARS:
        return None, f"a name is at most {MAX_NAME_CHARS} characters."
    i = _SPACES_AT.match(text, match.end()).end()
    fallback = None
    if text.startswith("|", i):
        i = _SPACES_AT.match(text, i + 1).end()
        if not text.startswith('"', i):
            return None, f'a fallback is written in double quotes, {{{{ {name} | "friend" }}}}.'
        chars, i = [], i + 1
        while True:
            if i >= len(text):
                return None, "the fallback's closing double quote is missing."
            char = text[i]
            if char == '"':
                i += 1
                break
            if char == "\\":
                escaped = text[i + 1:i + 2]
                if escaped not in ('"', "\\"):
                    return None, 'in a fallback, only \\" and \\\\ are escapes.'
                char, i = escaped, i + 1
            chars.append(char)
            if len(chars) > MAX_FALLBACK_CHARS:
                return None, f"a fallback is at most {MAX_FALLBACK_CHARS} characters."
            i += 1
        fallback = "".join(chars)
        i = _SPACES_AT.match(text, i).end()
    if not text.startswith("}}", i):
        expected = "`}}`" if fallback is not None else '`}}` or `| "fallback"`'
        return None, f"expected {expected} after the name {name}."
    return Placeholder(name, fallback), i + 2


def parse(text: str, *, strict: bool = True) -> Segments:
    """`text` as literal strings and placeholders. Every `{{` opens a placeholder: malformed ones
    raise PlaceholderError, or with `strict=False` (content stored before this check) stay literal."""
    segments: list = []
    i, literal = 0, []
    while True:
        start = text.find("{{", i)
        if start < 0:
            literal.append(text[i:])
            break
        match = PLACEHOLDER.match(text, start)
        if match is None:
            if strict:
                raise PlaceholderError(f"the placeholder at character {start + 1}: {_placeholder_at(text, start)[1]}")
            literal.append(text[i:start + 2])
            i = start + 2
            continue
        literal.append(text[i:start])
        if any(literal):
            segments.append("".join(literal))
        literal = []
        fallback = match.group(2)
        segments.append(Placeholder(match.group(1), None if fallback is None else _UNESCAPE.sub(r"\1", fallback)))
        i = match.end()
    if any(literal):
        segments.append("".join(literal))
    return tuple(segments)


def placeholders_of(segments: Segments) -> list[Placeholder]:
    return [segment for segment in segments if isinstance(segment, Placeholder)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def is_missing(value: Any) -> bool:
    """A placeholder's value is missing when the attribute is absent, null or the empty string."""
    return value is None or value == ""


def render_segments(segments: Segments, values: dict[str, Any]) -> str:
    """The text for one recipient; raises MissingAttributes naming what it lacks (no fallback)."""
    out, missing = [], []
    for segment in segments:
        if type(segment) is str:
            out.append(segment)
            continue
        value = values.get(segment.name)
        if is_missing(value):
            if segment.fallback is None:
                if segment.name not in missing:
                    missing.append(segment.name)
                continue
            value = segment.fallback
        out.append(_text(value))
    if missing:
        raise MissingAttributes(missing)
    return "".join(out)


@dataclass(frozen=True)
class CompiledContent:
    """A broadcast's content parsed once: an SMS body, or a template whose strings are parsed."""

    body: Segments | None
    template: Any
    placeholders: tuple[Placeholder, ...]

    def render_body(self, values: dict[str, Any]) -> str:
        return render_segments(self.body or (), values)

    def render_template(self, values: dict[str, Any]) -> dict:
        missing: list[str] = []

        def walk(value):
            if isinstance(value, tuple):
                try:
                    return render_segments(value, values)
                except MissingAttributes as exc:
                    missing.extend(name for name in exc.names if name not in missing)
                    return ""
            if isinstance(value, dict):
                return {key: walk(item) for key, item in value.items()}
            if isinstance(value, list):
                return [walk(item) for item in value]
            return value

        rendered = walk(self.template)
        if missing:
            raise MissingAttributes(missing)
        return rendered

    def required_names(self) -> list[str]:
        """Placeholder names with at least one occurrence that has no fallback."""
        return _unique(p.name for p in self.placeholders if p.fallback is None)

    def fallback_names(self) -> list[str]:
        """Names whose every occurrence has a fallback."""
        required = set(self.required_names())
        return _unique(p.name for p in self.placeholders if p.name not in required)


def _unique(names) -> list[str]:
    return list(dict.fromkeys(names))


def compile_content(*, body: str | None, template: dict | None, strict: bool = False) -> CompiledContent:
    """Parse a broadcast's body or template once, for validation (`strict`) or for sending."""
    found: list[Placeholder] = []

    def parsed(text: str):
        if "{{" not in text:
            return text
        segments = parse(text, strict=strict)
        found.extend(placeholders_of(segments))
        return segments

    def walk(value):
        if isinstance(value, str):
            return parsed(value)
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    if template is not None:
        compiled = {**template, "components": walk(template.get("components") or [])}
        return CompiledContent(body=None, template=compiled, placeholders=tuple(found))
    segments = parsed(body or "")
    return CompiledContent(body=(segments,) if isinstance(segments, str) else segments, template=None,
                           placeholders=tuple(found))


def contact_values(*, phone: str | None, country: str, attributes: dict | None) -> dict[str, Any]:
    """What a placeholder may name: the contact's attributes, then phone and country."""
    values = dict(attributes or {}) if isinstance(attributes, dict) else {}
    values["phone"] = phone or ""
    values["country"] = country or ""
    return values


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (input may be deeply nested on purpose)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_TEMPLATE_DEPTH:
                return level
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def template_size_errors(template: Any) -> dict[str, str]:
    """Field → message for a template over the size caps (checked before anything walks it)."""
    if not isinstance(template, dict):
        return {}
    if _depth(template) > MAX_TEMPLATE_DEPTH:
        return {"template": f"A template is nested at most {MAX_TEMPLATE_DEPTH} levels deep."}
    try:
        size = len(json.dumps(template, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return {"template": "A template is plain JSON."}
    if size > MAX_TEMPLATE_BYTES:
        return {"template": f"A template is at most {MAX_TEMPLATE_BYTES} bytes of JSON ({size} given)."}
    components = template.get("components", [])
    if isinstance(components, list):
        if len(components) > MAX_TEMPLATE_COMPONENTS:
            return {"template.components": f"At most {MAX_TEMPLATE_COMPONENTS} components."}
        for index, component in enumerate(components):
            parameters = component.get("parameters") if isinstance(component, dict) else None
            if isinstance(parameters, list) and len(parameters) > MAX_COMPONENT_PARAMETERS:
                return {"template.components": f"Component {index}: at most {MAX_COMPONENT_PARAMETERS} parameters."}
    return {}


def template_errors(template: Any) -> dict[str, str]:
    """Field → message for a WhatsApp template that the Cloud API would refuse outright."""
    if not isinstance(template, dict):
        return {"template": "Give the template as {name, language, components}."}
    errors = template_size_errors(template)
    if errors:
        return errors
    name = template.get("name")
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
        errors["template.name"] = "A template name is lower-case letters, digits and underscores."
    language = template.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    if not isinstance(language, str) or not LANGUAGE.match(language):
        errors["template.language"] = "A language code such as en_US or fr."
    components = template.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, dict) and isinstance(c.get("type"), str) for c in components):
        errors["template.components"] = "A list of components, each an object with a type."
    extra = set(template) - {"name", "language", "components"}
    if extra:
        errors["template"] = f"Unexpected keys: {', '.join(sorted(extra))}."
    return errors
