"""Pagination that answers 400 for a malformed `limit`, `offset`, `page_size` or `cursor` instead of a 500 or a guess.

DRF silently falls back to the default page for `?limit=abc` or `?offset=-3`; a client with a
bug then gets a page it did not ask for. The API promises 400 with field messages for bad input.
A page holds at most settings.API_MAX_PAGE_SIZE rows: a larger `limit` or `page_size` is clamped.
"""

from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError


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


def max_page_size() -> int:
    return int(getattr(settings, "API_MAX_PAGE_SIZE", 1000))


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's limit/offset pagination, strict about its parameters, with `limit` clamped to the maximum page."""

    @property
    def max_limit(self):
        return max_page_size()

    def get_limit(self, request):
        _non_negative_int(request, self.limit_query_param, strictly_positive=True)
        return super().get_limit(request)

    def get_offset(self, request):
        _non_negative_int(request, self.offset_query_param)
        return super().get_offset(request)


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pagination over an integer ordering, strict about `page_size` and `cursor`."""

    @property
    def max_page_size(self):
        return max_page_size()

    def get_page_size(self, request):
        if self.page_size_query_param:
            _non_negative_int(request, self.page_size_query_param, strictly_positive=True)
        return super().get_page_size(request)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: self.invalid_cursor_message}) from None
        # The position is a value of the (integer) ordering field: a forged one reached the query as a 500.
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except ValueError:
                raise ValidationError({self.cursor_query_param: self.invalid_cursor_message}) from None
        return cursor
