"""OpenAPI generation: nested InputSerializer/OutputSerializer classes get their view's name."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.settings import spectacular_settings


class AutoSchema(BaseAutoSchema):
    """Names a nested `SomeApi.InputSerializer` component `SomeApiInput` so that names never collide."""

    def _get_serializer_name(self, serializer, direction, bypass_extensions=False):
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname and not getattr(getattr(serializer, "Meta", None), "ref_name", None):
            owner, inner = qualname.rsplit(".", 1)
            owner = owner.replace(".", "")
            inner = inner.removesuffix("Serializer")
            name = f"{owner}{inner}"
            if direction == "request" and self._is_split_request_name_needed(serializer):
                name += "Request"
        return name

    def _is_split_request_name_needed(self, serializer) -> bool:
        return spectacular_settings.COMPONENT_SPLIT_REQUEST

    def _get_pagination_parameters(self):
        """An APIView that paginates by hand declares `pagination_class`; document its query parameters."""
        paginator = self._get_paginator()
        if paginator is None or self.method != "GET":
            return super()._get_pagination_parameters()
        return paginator.get_schema_operation_parameters(self.view)

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        """Every operation also documents the errors the API answers with (DRF's shapes), so that
        clients and schema-driven tests know a 400, 401, 403, 404 or 503 is part of the contract."""
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code, description in self._error_responses(operation).items():
            schema = VALIDATION_ERROR if code == "400" else DETAIL_ERROR
            responses.setdefault(code, {"content": {"application/json": {"schema": schema}}, "description": description})
        return operation

    def _error_responses(self, operation) -> dict[str, str]:
        errors = {"400": "Invalid input: field name to messages (or `detail`).",
                  "401": "Missing or invalid `Authorization: Token <key>` header.",
                  "403": "The token's role may not do this.",
                  "503": "The database is unavailable; retry after `Retry-After` seconds."}
        if "{" in self.path:
            errors["404"] = "No such object."
        if "requestBody" in operation:
            errors["415"] = "The body is not JSON (or another declared media type)."
        return errors


DETAIL_ERROR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
VALIDATION_ERROR = {"type": "object", "additionalProperties": {}}
