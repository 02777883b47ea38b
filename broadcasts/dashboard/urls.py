"""The marketers' workspace pages, included under /workspace/ by config/urls.py (staff login: the admin's)."""

from django.contrib import admin
from django.urls import path

from consent import import_views

from . import views

app_name = "workspace"

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("contacts/import/", admin.site.admin_view(import_views.import_page), name="contacts-import"),
]
