"""Refuse the NUL character at the edge: PostgreSQL cannot store it in text or jsonb.

Without this a `\\u0000` in a JSON string, a form field or a query parameter reached the
database and came back as a DataError (500) on PostgreSQL while SQLite stored it. The API
promises a 400 for bad input on every store, so NUL is rejected before any view runs.
"""

from django.http import JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

NUL = "\x00"
MESSAGE = "Text may not contain the NUL character (\\u0000)."


def contains_nul(value) -> bool:
    """Whether a parsed body (dicts, lists, strings, QueryDicts) holds a NUL anywhere, keys included."""
    stack = [value]  # no recursion: a body may nest as deep as the JSON parser allows
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif hasattr(item, "lists"):  # QueryDict / MultiValueDict
            for key, values in item.lists():
                stack += [key, values]
        elif isinstance(item, dict):
            for key, child in item.items():
                stack += [key, child]
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


class _RefuseNul:
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if contains_nul(getattr(data, "data", data)):
            raise ParseError(MESSAGE)
        return data


class JSONParser(_RefuseNul, parsers.JSONParser):
    """DRF's JSON parser, refusing NUL in any string."""


class FormParser(_RefuseNul, parsers.FormParser):
    """DRF's form parser, refusing NUL in any field."""


class MultiPartParser(_RefuseNul, parsers.MultiPartParser):
    """DRF's multipart parser, refusing NUL in any field."""


class RejectNulMiddleware:
    """400 for a NUL in the path or the query string, before URL resolution or any view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if NUL in request.path or contains_nul(request.GET):
            if request.path.startswith(("/api/", "/webhooks/")):
                return JsonResponse({"detail": MESSAGE}, status=400)
            from django.http import HttpResponseBadRequest

            return HttpResponseBadRequest(MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
