"""Provider webhooks, included under /webhooks/ by config/urls.py."""

from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("twilio/inbound/", views.twilio_inbound, name="twilio-inbound"),
    path("twilio/status/", views.twilio_status, name="twilio-status"),
    path("whatsapp/", views.whatsapp, name="whatsapp"),
]
