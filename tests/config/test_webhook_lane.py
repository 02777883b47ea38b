"""config/webhook_lane.py: a provider webhook's view is called without the browser's middleware."""

import pytest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import Client
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

seen = []


def _what_ran(request):
    seen.append({"session": hasattr(request, "session"), "user": hasattr(request, "user"),
                 "resolver_match": getattr(request, "resolver_match", None) and request.resolver_match.url_name})


@csrf_exempt
def exempt(request):
    _what_ran(request)
    return HttpResponse("<Response/>", content_type="text/xml")


@csrf_exempt
def exempt_with_length(request):
    response = JsonResponse({"ok": True})
    response["Content-Length"] = "11"
    return response


@csrf_exempt
def exempt_streaming(request):
    return StreamingHttpResponse(iter([b"a", b"b"]))


@csrf_exempt
def exempt_raises(request):
    raise RuntimeError("a bug in a webhook view")


def not_exempt(request):
    _what_ran(request)
    return HttpResponse("ok")


urlpatterns = [
    path("webhooks/exempt/", exempt, name="exempt"),
    path("webhooks/length/", exempt_with_length),
    path("webhooks/streaming/", exempt_streaming),
    path("webhooks/raises/", exempt_raises),
    path("webhooks/not-exempt/", not_exempt, name="not-exempt"),
    path("elsewhere/exempt/", exempt, name="elsewhere"),
]

pytestmark = [pytest.mark.urls(__name__)]


@pytest.fixture(autouse=True)
def _clear():
    seen.clear()


def test_a_webhook_view_runs_without_the_browser_middleware():
    response = Client().post("/webhooks/exempt/", {"Body": "STOP"})
    assert response.status_code == 200
    assert seen == [{"session": False, "user": False, "resolver_match": "exempt"}]
    assert response["Content-Length"] == str(len(b"<Response/>"))
    assert "X-Frame-Options" not in response  # XFrameOptionsMiddleware, below the lane, did not run
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, above it, did
    assert not response.cookies


def test_the_same_view_elsewhere_goes_down_the_whole_chain():
    response = Client().post("/elsewhere/exempt/", {"Body": "STOP"})
    assert response.status_code == 200
    assert seen == [{"session": True, "user": True, "resolver_match": "elsewhere"}]
    assert response["X-Frame-Options"] == "DENY"


def test_a_view_that_checks_csrf_is_not_taken_out_of_the_chain():
    response = Client(enforce_csrf_checks=True).post("/webhooks/not-exempt/", {"Body": "STOP"})
    assert response.status_code == 403  # CsrfViewMiddleware ran and refused the tokenless POST
    assert seen == []
    assert Client().post("/webhooks/not-exempt/").status_code == 200
    assert seen == [{"session": True, "user": True, "resolver_match": "not-exempt"}]


def test_an_unknown_webhook_path_gets_the_usual_404():
    response = Client().post("/webhooks/nothing-here/", {"Body": "STOP"})
    assert response.status_code == 404
    assert response["X-Frame-Options"] == "DENY"


def test_a_host_not_allowed_is_refused_400(settings):
    settings.ALLOWED_HOSTS = ["consent.example.com"]
    response = Client().post("/webhooks/exempt/", {"Body": "STOP"}, HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert seen == []
    assert Client().post("/webhooks/exempt/", HTTP_HOST="consent.example.com").status_code == 200


def test_a_content_length_of_the_view_and_a_streaming_body_are_left_as_they_are():
    assert Client().post("/webhooks/length/")["Content-Length"] == "11"
    streaming = Client().post("/webhooks/streaming/")
    assert "Content-Length" not in streaming
    assert b"".join(streaming.streaming_content) == b"ab"


def test_a_view_that_raises_is_answered_by_the_error_handler_not_a_crash():
    client = Client(raise_request_exception=False)
    response = client.post("/webhooks/raises/")
    assert response.status_code == 500
