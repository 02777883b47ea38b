"""The API docs (Swagger UI at /api/docs/, ReDoc at /api/redoc/) render from the project's own
static files in a real headless Chromium, and no request the page makes leaves loopback.

Every request is recorded (and anything not for the live server is refused, so that nothing
leaks while the test runs); the page is also opened under a public-looking host name mapped to
loopback, as a deployed service would be, where Swagger UI would otherwise call its online validator.
Skipped, saying why, where /usr/bin/chromium is not installed (.ci/run installs it).
"""

import urllib.parse

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS

PUBLIC_NAME = "consent.example.test"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM),
                       reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) "
                              "or set CHROMIUM_PATH to run the browser test"),
]


@pytest.fixture
def docs_browser(live_server, settings, monkeypatch):
    from playwright.sync_api import sync_playwright

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, PUBLIC_NAME]
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1"])
        yield browser
        browser.close()


def _open(browser, url, ready_selector):
    """Open `url`; return (every URL requested, whether `ready_selector` appeared)."""
    origin = urllib.parse.urlsplit(url)
    requested = []
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)

    def route(route, request):
        requested.append(request.url)
        target = urllib.parse.urlsplit(request.url)
        if (target.scheme, target.netloc) == (origin.scheme, origin.netloc):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", route)
    page.goto(url)
    try:
        page.wait_for_selector(ready_selector, state="attached")
        page.wait_for_load_state("networkidle")
        rendered = True
    except Exception:
        rendered = False
    text = page.inner_text("body") if rendered else ""
    context.close()
    return requested, rendered, text


@pytest.mark.parametrize("host", ["127.0.0.1", PUBLIC_NAME])
@pytest.mark.parametrize("path,ready", [("/api/docs/", ".opblock"), ("/api/redoc/", "[data-section-id^='operation/']")],
                         ids=["swagger-ui", "redoc"])
def test_api_docs_render_offline(docs_browser, live_server, host, path, ready):
    port = urllib.parse.urlsplit(live_server.url).port
    requested, rendered, text = _open(docs_browser, f"http://{host}:{port}{path}", ready)
    elsewhere = [url for url in requested if urllib.parse.urlsplit(url).netloc != f"{host}:{port}"]
    assert not elsewhere, f"the docs page requested outside the service: {elsewhere}"
    assert rendered, f"{path} did not render its operations; requests: {requested}"
    assert "/api/v1/topics/" in text and "/api/v1/optins/" in text
    assert any(url.endswith("/api/schema/") for url in requested)
    assert all(urllib.parse.urlsplit(url).hostname in ("127.0.0.1", PUBLIC_NAME) for url in requested)
