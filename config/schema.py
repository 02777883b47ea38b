"""OpenAPI generation: nested InputSerializer/OutputSerializer classes get their view's name."""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema


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
        from drf_spectacular.settings import spectacular_settings

        return spectacular_settings.COMPONENT_SPLIT_REQUEST
