from django.urls import include, path

from . import apis, import_apis
from .audit import apis as audit_apis

urlpatterns = [
    path("topics/", apis.TopicListApi.as_view(), name="topic-list"),
    path("topics/<slug:slug>/", apis.TopicDetailApi.as_view(), name="topic-detail"),
    path("topics/<slug:slug>/texts/", apis.TopicTextListApi.as_view(), name="topic-texts"),
    path("optins/", apis.OptinRequestApi.as_view(), name="optin-request"),
    path("optins/confirm/", apis.OptinConfirmApi.as_view(), name="optin-confirm"),
    path("consents/", apis.ConsentListApi.as_view(), name="consent-list"),
    path("consents/revoke/", apis.ConsentRevokeApi.as_view(), name="consent-revoke"),
    path("consents/import/", apis.ConsentImportApi.as_view(), name="consent-import"),
    path("messages/", apis.MessageListApi.as_view(), name="message-list"),
    path("revocations/review/", apis.RevocationReviewListApi.as_view(), name="revocation-review-list"),
    path("revocations/review/<int:pk>/resolve/", apis.RevocationReviewResolveApi.as_view(),
         name="revocation-review-resolve"),
    path("contacts/", apis.ContactListApi.as_view(), name="contact-list"),
    path("contacts/import/", import_apis.ContactImportApi.as_view(), name="contact-import"),
    path("contacts/<str:phone>/", apis.ContactDetailApi.as_view(), name="contact-detail"),
    path("contacts/<str:phone>/proof/", audit_apis.ContactProofApi.as_view(), name="contact-proof"),
    path("contacts/<str:phone>/receipts/", audit_apis.ContactReceiptsApi.as_view(), name="contact-receipts"),
    path("contacts/<str:phone>/erase/", audit_apis.ContactEraseApi.as_view(), name="contact-erase"),
    path("audit/", include("consent.audit.urls")),
    path("conversations/", include("consent.care.urls")),
]
