"""The client's IP address, trusting X-Forwarded-For only when it was added by our own proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[_Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"settings.TRUSTED_PROXIES has {entry!r}, which is not an IP address or network (e.g. 10.0.0.0/8)."
            ) from None
    return tuple(networks)


def _parse(text: str):
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or, when that is a trusted proxy, the nearest X-Forwarded-For hop that is not one."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    trusted = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    remote_ip = _parse(remote)
    if not trusted or remote_ip is None or not any(remote_ip in net for net in trusted):
        return remote
    candidate = remote_ip
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            break  # a malformed hop: trust nothing further left
        candidate = ip
        if not any(ip in net for net in trusted):
            break
    return str(candidate)
