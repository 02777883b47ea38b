"""Refuse at the edge what no view can handle: the NUL character, and JSON nested too deeply.

PostgreSQL cannot store NUL in text or jsonb. Without this a `\\u0000` in a JSON string, a form
field or a query parameter reached the database and came back as a DataError (500) on PostgreSQL
while SQLite stored it. A JSON body nested thousands deep overflowed the decoder's stack
(RecursionError, 500). The API promises a 400 for bad input, so both are refused before any view runs.
"""

from django.http import HttpResponseBadRequest, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

NUL = "\x00"
MESSAGE = "Text may not contain the NUL character (\\u0000)."
# No request of this API nests deeper than a few levels; "[[[[…" thousands deep overflows the decoder's stack.
MAX_JSON_DEPTH = 32
DEPTH_MESSAGE = f"JSON body nested more than {MAX_JSON_DEPTH} levels deep."


def body_problem(value, max_depth: int | None = None) -> str | None:
    """Why a parsed body must be refused (a NUL anywhere, keys included; nesting past `max_depth`), or None.

    One iterative walk (no recursion: a body may nest as deep as its parser allows).
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return MESSAGE
            continue
        if isinstance(item, (dict, list)) and max_depth is not None and depth > max_depth:
            return DEPTH_MESSAGE
        if hasattr(item, "lists"):  # QueryDict / MultiValueDict
            for key, values in item.lists():
                stack += [(key, depth), (values, depth)]
        elif isinstance(item, dict):
            for key, child in item.items():
                stack += [(key, depth), (child, depth + 1)]
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return None


def contains_nul(value) -> bool:
    """Whether a parsed body (dicts, lists, strings, QueryDicts) holds a NUL anywhere, keys included."""
    return body_problem(value) is not None


class _RefuseNul:
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(getattr(data, "data", data)):
            raise ParseError(MESSAGE)
        return data


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing NUL in any string and nesting deeper than MAX_JSON_DEPTH (one walk)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(DEPTH_MESSAGE) from None
        problem = body_problem(data, MAX_JSON_DEPTH)
        if problem:
            raise ParseError(problem)
        return data


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
            return HttpResponseBadRequest(MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
