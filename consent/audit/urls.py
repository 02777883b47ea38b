from django.urls import path

from . import apis

urlpatterns = [
    path("events/", apis.AuditEventListApi.as_view(), name="audit-events"),
    path("actions/", apis.AuditActionListApi.as_view(), name="audit-actions"),
    path("verify/", apis.AuditVerifyApi.as_view(), name="audit-verify"),
    path("export/", apis.AuditExportApi.as_view(), name="audit-export"),
    path("export/manifest/", apis.AuditExportManifestApi.as_view(), name="audit-export-manifest"),
    path("texts/", apis.AuditTextListApi.as_view(), name="audit-texts"),
    path("public-key/", apis.AuditPublicKeyApi.as_view(), name="audit-public-key"),
]
