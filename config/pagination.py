"""Pagination that answers 400 for a malformed `limit`, `offset` or `page_size` instead of ignoring it.

DRF silently falls back to the default page for `?limit=abc` or `?offset=-3`; a client with a
bug then gets a page it did not ask for. The API promises 400 with field messages for bad input.
"""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError


def _non_negative_int(request, name, *, strictly_positive=False):
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: "A whole number."}) from None
    if value < 0 or (strictly_positive and value == 0):
        raise ValidationError({name: "A positive whole number." if strictly_positive else "Zero or more."})
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset pagination, strict about its parameters."""

    def get_limit(self, request):
        _non_negative_int(request, self.limit_query_param, strictly_positive=True)
        return super().get_limit(request)

    def get_offset(self, request):
        _non_negative_int(request, self.offset_query_param)
        return super().get_offset(request)


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pagination, strict about `page_size`."""

    def get_page_size(self, request):
        if self.page_size_query_param:
            _non_negative_int(request, self.page_size_query_param, strictly_positive=True)
        return super().get_page_size(request)
