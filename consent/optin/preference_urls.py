"""The preference centre, included under /preferences/ by config/urls.py."""

from django.urls import path

from . import preference_views

app_name = "preferences"

urlpatterns = [
    path("<str:token>/", preference_views.preferences_page, name="page"),
]
