"""One error shape for the API: DRF's, plus Django ValidationErrors from services turned into 400s."""

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, with service ValidationErrors as 400 field errors and database outages as 503."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, DataError):
        # Input the database cannot hold (a value out of range, a character it refuses) that
        # slipped past validation: the client's data, so a 400, never a 500.
        logger.warning("database refused the input: %s", exc)
        return Response({"detail": "The input contains a value the service cannot store."},
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DatabaseError) and _is_unavailable(exc):
        logger.warning("database unavailable: %s", exc)
        return Response({"detail": "The service is temporarily unavailable; try again."},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    return None


def _is_unavailable(exc) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError))
