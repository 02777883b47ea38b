"""Broadcast API routes (mounted under /api/v1/)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("broadcasts/", apis.BroadcastListApi.as_view(), name="broadcast-list"),
    path("broadcasts/<int:pk>/", apis.BroadcastDetailApi.as_view(), name="broadcast-detail"),
    path("broadcasts/<int:pk>/schedule/", apis.BroadcastScheduleApi.as_view(), name="broadcast-schedule"),
    path("broadcasts/<int:pk>/pause/", apis.BroadcastPauseApi.as_view(), name="broadcast-pause"),
    path("broadcasts/<int:pk>/resume/", apis.BroadcastResumeApi.as_view(), name="broadcast-resume"),
    path("broadcasts/<int:pk>/cancel/", apis.BroadcastCancelApi.as_view(), name="broadcast-cancel"),
    path("broadcasts/<int:pk>/audience/", apis.BroadcastAudienceApi.as_view(), name="broadcast-audience"),
    path("broadcasts/<int:pk>/test/", apis.BroadcastTestSendApi.as_view(), name="broadcast-test-send"),
    path("broadcasts/<int:pk>/deliveries/", apis.BroadcastDeliveryListApi.as_view(), name="broadcast-deliveries"),
    path("policies/", apis.PolicyApi.as_view(), name="policies"),
]
