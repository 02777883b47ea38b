from django.urls import path

from . import apis

urlpatterns = [
    path("", apis.ConversationListApi.as_view(), name="conversation-list"),
    path("<int:pk>/", apis.ConversationDetailApi.as_view(), name="conversation-detail"),
    path("<int:pk>/reply/", apis.ConversationReplyApi.as_view(), name="conversation-reply"),
    path("<int:pk>/close/", apis.ConversationCloseApi.as_view(), name="conversation-close"),
    path("<int:pk>/assign/", apis.ConversationAssignApi.as_view(), name="conversation-assign"),
]
