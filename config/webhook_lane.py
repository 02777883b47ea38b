"""Provider webhooks skip the browser's middleware.

A provider's POST carries no cookie, no session and no CSRF token, and is answered with XML, JSON or
nothing. Sessions, CSRF, authentication, messages, static files, the workspace time zone and
clickjacking protection have nothing to do for it, yet going through them cost 8.5 % of what the web
process executes for an inbound webhook (bench/intake_instructions.py: 3.14 M instructions with the
whole chain, 2.87 M through this lane). Twilio does not retry a webhook that times out, so the
intake's cost is what decides how large a burst of STOPs is answered in time.

Placed after SecurityMiddleware (HTTPS redirect, HSTS, nosniff) and RejectNulMiddleware, this
middleware answers a request under WEBHOOK_PREFIX whose view is `csrf_exempt` (every provider
webhook is: a signature authenticates it) by calling the view itself, as Django's handler would.
Everything else goes down the whole chain: other paths, a webhook path that resolves to nothing (the
usual 404), and a view that is not `csrf_exempt`. The Host header is still checked against
ALLOWED_HOSTS (400 otherwise) and the response gets its Content-Length, as CommonMiddleware does.
"""

from __future__ import annotations

from django.urls import Resolver404, resolve

# The prefix is what keeps the lane to provider webhooks: DRF's API views are `csrf_exempt` too (DRF
# checks CSRF itself, for session logins), and they need the whole chain.
WEBHOOK_PREFIX = "/webhooks/"


class WebhookLaneMiddleware:
    """Call a provider webhook's view directly, without the middleware below this one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(WEBHOOK_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "csrf_exempt", False):
            return self.get_response(request)
        request.get_host()  # DisallowedHost, answered 400 by Django, as for any request
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
