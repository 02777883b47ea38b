"""Broadcast content: `{{ placeholder }}` parsing and rendering, WhatsApp template checks (pure, no ORM)."""

from __future__ import annotations

import re
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
BUILTINS = ("phone", "country")
MAX_SMS_CHARS = 1600


def placeholders_in(text: str) -> list[str]:
    """Placeholder names in `text`, in order, without duplicates (malformed ones included as written)."""
    names = []
    for match in PLACEHOLDER.finditer(text or ""):
        name = match.group(1)
        if name not in names:
            names.append(name)
    return names


def template_texts(template: dict | None) -> list[str]:
    """Every string inside a template's components (where placeholders may appear)."""
    found = []

    def walk(value):
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk((template or {}).get("components") or [])
    return found


def unknown_placeholders(texts: list[str], known: set[str]) -> list[str]:
    """Placeholders in `texts` that are malformed or not among `known`."""
    unknown = []
    for text in texts:
        for name in placeholders_in(text):
            if (not NAME.match(name) or name not in known) and name not in unknown:
                unknown.append(name)
    return unknown


def render(text: str, values: dict[str, Any]) -> str:
    """Fill `{{ name }}` from `values`; a contact without the attribute gets an empty string."""
    if "{{" not in text:
        return text

    def fill(match):
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(fill, text)


def render_template(template: dict, values: dict[str, Any]) -> dict:
    """A copy of the template with placeholders filled in every string of its components."""

    def walk(value):
        if isinstance(value, str):
            return render(value, values)
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return {**template, "components": walk(template.get("components") or [])}


def contact_values(*, phone: str | None, country: str, attributes: dict | None) -> dict[str, Any]:
    """What a placeholder may name: the contact's attributes, then phone and country."""
    values = dict(attributes or {}) if isinstance(attributes, dict) else {}
    values["phone"] = phone or ""
    values["country"] = country or ""
    return values


def template_errors(template: Any) -> dict[str, str]:
    """Field → message for a WhatsApp template that the Cloud API would refuse outright."""
    if not isinstance(template, dict):
        return {"template": "Give the template as {name, language, components}."}
    errors = {}
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
