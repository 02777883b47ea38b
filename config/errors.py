"""Error pages: JSON for the API and webhooks (clients parse the body), Django's pages elsewhere."""

from django.http import JsonResponse
from django.views import defaults

_JSON_PREFIXES = ("/api/", "/webhooks/")


def _wants_json(request) -> bool:
    return request.path.startswith(_JSON_PREFIXES)


def not_found(request, exception=None):
    """404: a URL that matches no route (such as /api/v1/broadcasts/abc/) answers like any API 404."""
    if _wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)
