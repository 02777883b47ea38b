"""Real headless Chromium for the browser tests (Playwright driving Debian's chromium).

Skipped, saying why, where /usr/bin/chromium is not installed (`apt-get install -y chromium`;
.ci/run does), or point CHROMIUM_PATH at another build.
"""

import os

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# A browser test module's pytestmark.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) "
                              "or set CHROMIUM_PATH to run the browser test"),
]


def browser_page(monkeypatch, *, timeout_ms: int = 15_000, args=(), **context_options):
    """Yield a page of a fresh browser (a fixture's body: `yield from browser_page(monkeypatch, …)`)."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still plain synchronous calls between browser steps, which is what this flag allows.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *args])
        context = browser.new_context(**context_options)
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        yield page
        context.close()
        browser.close()
        # With that loop running, the test's ORM calls got connections of their own (Django keys
        # connections by async context): close them here, or PostgreSQL could not drop the test
        # database at the end of the run.
        connections.close_all()
