"""HTTP API for the contacts import (CSV upload): `POST /api/v1/contacts/import/` (admin)."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import imports
from .models import actor_for
from .permissions import IsAdminRole


class ImportResultSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    phone = serializers.CharField()
    outcome = serializers.CharField()


class ContactImportApi(APIView):
    """Import contacts with attributes, and legacy consent proofs with their evidence, from a CSV file.

    Columns: `phone`; `topic`, `channel`, `confirmed_at`, `source_detail` and `evidence_<name>` for a
    proof of consent; any other column is an attribute. `dry_run=true` previews (nothing is written).
    Rows with errors are listed by line and not imported. A revoked consent is never reactivated and an
    erased or suppressed number is never touched."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="CSV, UTF-8, one header row; at most 10,000 rows and 5 MB.")
        dry_run = serializers.BooleanField(required=False, default=False)

    @extend_schema(request={"multipart/form-data": InputSerializer},
                   responses={200: inline_serializer("ContactImportSummary", {
                       "committed": serializers.BooleanField(), "rows": serializers.IntegerField(),
                       "contacts_created": serializers.IntegerField(), "contacts_updated": serializers.IntegerField(),
                       "skipped": serializers.IntegerField(help_text="Rows of erased or suppressed numbers."),
                       "errors": serializers.ListField(child=serializers.DictField(), help_text="{line, errors}"),
                       "consents": serializers.DictField(help_text="imported, active, expired, skipped, batch"),
                       "results": ImportResultSerializer(many=True)})})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > imports.MAX_BYTES:
            raise exceptions.ValidationError({"file": [f"At most {imports.MAX_BYTES // (1024 * 1024)} MB."]})
        try:
            summary = imports.contacts_import(data=upload.read(), actor=actor_for(request.user),
                                              commit=not data.validated_data["dry_run"])
        except imports.ImportFileError as exc:
            raise exceptions.ValidationError({"file": [str(exc)]}) from None
        return Response(summary)
