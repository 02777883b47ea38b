"""OpenAPI generation: nested InputSerializer/OutputSerializer classes get their view's name."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter


class AutoSchema(BaseAutoSchema):
    """Names a nested `SomeApi.InputSerializer` component `SomeApiInput` so that names never collide,
    documents the query parameters of APIViews that paginate by hand, and the errors every operation
    answers with. Only drf-spectacular's public hooks are overridden."""

    def get_serializer_name(self, serializer, direction):
        qualname = type(serializer).__qualname__
        if "." in qualname:
            # drf-spectacular then strips the "Serializer" suffix and adds "Request" where it splits.
            owner, inner = qualname.rsplit(".", 1)
            return f"{owner.replace('.', '')}{inner}"
        return super().get_serializer_name(serializer, direction)

    def get_override_parameters(self):
        """An APIView that paginates by hand declares `pagination_class`: its query parameters."""
        parameters = list(super().get_override_parameters())
        pagination_class = getattr(self.view, "pagination_class", None)
        if pagination_class is None or self.method != "GET":
            return parameters
        for spec in pagination_class().get_schema_operation_parameters(self.view):
            kind = (spec.get("schema") or {}).get("type")
            parameters.append(OpenApiParameter(
                spec["name"], type=OpenApiTypes.INT if kind == "integer" else OpenApiTypes.STR,
                location=spec.get("in", OpenApiParameter.QUERY), required=bool(spec.get("required")),
                description=spec.get("description", "")))
        return parameters

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
