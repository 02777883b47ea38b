from django.urls import path

from .views import inbound

urlpatterns = [path("webhooks/twilio/inbound/", inbound)]
