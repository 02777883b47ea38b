"""The hosted opt-in pages, included under /optin/ by config/urls.py."""

from django.urls import path

from . import views

app_name = "optin"

urlpatterns = [
    path("confirm/<str:token>/", views.confirm_page, name="confirm"),
    path("<slug:topic>/", views.optin_page, name="page"),
]
