from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import docs, health

# Provider webhooks first: their paths are matched before the others are tried (the busiest, by far).
urlpatterns = [
    path("webhooks/", include("consent.webhooks.urls")),
    path("admin/", admin.site.urls),
    path("workspace/", include("broadcasts.dashboard.urls")),
    path("api/v1/", include("consent.urls")),
    path("api/v1/", include("broadcasts.urls")),
    path("optin/", include("consent.optin.urls")),
    path("preferences/", include("consent.optin.preference_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs.swagger_ui, name="api-docs"),
    path("api/redoc/", docs.redoc, name="api-redoc"),
    path("healthz/", health.healthz, name="healthz"),
    path("readyz/", health.readyz, name="readyz"),
]

handler400 = "config.errors.bad_request"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
