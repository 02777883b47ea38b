"""Webhook signatures of Twilio and WhatsApp Cloud (pure, no ORM).

Twilio (X-Twilio-Signature): base64 HMAC over the full URL Twilio requested followed by
every POST parameter name and value, names sorted, the distinct values of a name sorted.
HMAC-SHA1 with the auth token by default; HMAC-SHA256 when the request names it in
X-Twilio-Webhooks-Signature-Settings. Because Twilio is not consistent about the default
port, a signature over the URL with or without it is accepted (as twilio's own
RequestValidator does, which the tests hold this module to).

WhatsApp Cloud (X-Hub-Signature-256): "sha256=" + hex HMAC-SHA256 of the raw body with the
app secret.

Comparisons are constant-time; anything malformed is simply "not valid", never an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlparse

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
WHATSAPP_SIGNATURE_HEADER = "X-Hub-Signature-256"

HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
_TWILIO_HASHES = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


def _same(expected: str, given: Any) -> bool:
    """Constant-time equality of two texts; False for anything that is not a text."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def _values(params: Any, name: str) -> list[str]:
    for getter in ("getall", "getlist"):  # MultiDict / Django QueryDict
        method = getattr(params, getter, None)
        if callable(method):
            return list(method(name))
    return [params[name]]


def _signed_params(params: Mapping[str, Any] | None) -> str:
    """The parameters' part of the signed text: name+value of every parameter in sorted order."""
    parts = []
    if params:
        for name in sorted(set(params)):
            for value in sorted(set(_values(params, name))):
                parts.append(name + value)
    return "".join(parts)


def twilio_signing_string(url: str, params: Mapping[str, Any] | None) -> str:
    """The exact text Twilio signs: the URL, then name+value of every parameter in sorted order."""
    return url + _signed_params(params)


def twilio_algorithm(signature_settings_header: str | None) -> str:
    """The algorithm named by X-Twilio-Webhooks-Signature-Settings; absent means HMAC_SHA1."""
    for part in (signature_settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return HMAC_SHA1


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Any] | None, *, algorithm: str = HMAC_SHA1) -> str:
    """Compute the X-Twilio-Signature of a request (used to sign test and benchmark requests too)."""
    hash_function = _TWILIO_HASHES.get((algorithm or HMAC_SHA1).upper())
    if hash_function is None:
        raise ValueError(f"Unsupported Twilio signature algorithm {algorithm!r}; use {HMAC_SHA1} or {HMAC_SHA256}.")
    return _sign(auth_token, url + _signed_params(params), hash_function)


def _sign(auth_token: str, text: str, hash_function) -> str:
    digest = hmac.new(auth_token.encode("utf-8"), text.encode("utf-8"), hash_function).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> Iterable[str]:
    """The URL without and with its default port, as Twilio may have signed either."""
    parsed = urlparse(url)
    if parsed.port:
        yield parsed._replace(netloc=parsed.netloc.split(":")[0]).geturl()
        yield parsed.geturl()
    else:
        yield parsed.geturl()
        default_port = 443 if parsed.scheme == "https" else 80
        yield parsed._replace(netloc=f"{parsed.netloc}:{default_port}").geturl()


def verify_twilio_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, Any] | str | None,
    signature: str | None,
    *,
    algorithm: str | None = None,
) -> bool:
    """True when `signature` is Twilio's signature of this request; False for anything else.

    `params` is the form (a dict or QueryDict), or the raw body text of a JSON webhook whose URL
    carries `bodySHA256`.
    """
    if not auth_token or not isinstance(signature, str) or not signature:
        return False
    algorithm = (algorithm or HMAC_SHA1).upper()
    if algorithm not in _TWILIO_HASHES:
        return False
    if params is None:
        params = {}
    try:
        query = parse_qs(urlparse(url).query)
        body_ok = True
        if "bodySHA256" in query and isinstance(params, str):
            body_ok = _same(hashlib.sha256(params.encode("utf-8")).hexdigest(), query["bodySHA256"][0])
            params = {}
        if isinstance(params, str):
            if params:
                return False  # a raw body is only signed through bodySHA256
            params = {}
        signed_params = _signed_params(params)  # the same for every URL variant
        hash_function = _TWILIO_HASHES[algorithm]
        matches = [_same(_sign(auth_token, variant + signed_params, hash_function), signature)
                   for variant in _url_variants(url)]
    except (ValueError, TypeError, UnicodeError):  # a bad port, a value that is no text, ...
        return False
    return body_ok and any(matches)


def whatsapp_signature(app_secret: str, body: bytes) -> str:
    """Compute the X-Hub-Signature-256 header value of a raw body."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_whatsapp_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the X-Hub-Signature-256 of `body` under `app_secret`."""
    if not app_secret or not isinstance(header, str) or not isinstance(body, (bytes, bytearray)):
        return False
    return _same(whatsapp_signature(app_secret, bytes(body)), header.strip())
