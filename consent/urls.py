from django.urls import path

from . import apis

urlpatterns = [
    path("topics/", apis.TopicListApi.as_view(), name="topic-list"),
    path("topics/<slug:slug>/", apis.TopicDetailApi.as_view(), name="topic-detail"),
    path("topics/<slug:slug>/texts/", apis.TopicTextListApi.as_view(), name="topic-texts"),
    path("optins/", apis.OptinRequestApi.as_view(), name="optin-request"),
    path("optins/confirm/", apis.OptinConfirmApi.as_view(), name="optin-confirm"),
    path("consents/", apis.ConsentListApi.as_view(), name="consent-list"),
    path("consents/revoke/", apis.ConsentRevokeApi.as_view(), name="consent-revoke"),
    path("consents/import/", apis.ConsentImportApi.as_view(), name="consent-import"),
    path("contacts/", apis.ContactListApi.as_view(), name="contact-list"),
    path("contacts/<str:phone>/", apis.ContactDetailApi.as_view(), name="contact-detail"),
]
