"""Schemathesis against /api/schema/, in process through the WSGI app, with every role's token and none.

For every operation, positive and negative (schema-violating) examples, each sent as admin,
marketer, auditor and anonymous: never a 5xx, and status code, content type, headers and body
conform to the published schema; schema-violating input is rejected. Examples are bounded and
derandomised so that every CI run is the same and the whole module stays well under a minute.

(schemathesis' own pytest plugin addresses pytest internals that pytest 9 no longer has, so the
operations are driven here through the public `APIOperation.as_strategy` API instead.)
"""

from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

pytestmark = pytest.mark.django_db

IDENTITIES = ("admin", "marketer", "auditor", None)
MAX_EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 6}
HYPOTHESIS = settings(deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)


class InTestTransaction:
    """The Django WSGI app, minus the closing of "old" connections at the start and end of each
    request: inside the test's transaction that would end the transaction (django.test.Client
    does the same). The body is read and the response closed before the signals come back."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = signals.request_started.disconnect(close_old_connections)
        finished = signals.request_finished.disconnect(close_old_connections)
        try:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            if started:
                signals.request_started.connect(close_old_connections)
            if finished:
                signals.request_finished.connect(close_old_connections)
        return [body]


@pytest.fixture
def wsgi_in_test_transaction():
    return InTestTransaction(get_wsgi_application())


@pytest.fixture
def api_schema(wsgi_in_test_transaction):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_in_test_transaction)
    # Unknown query parameters are ignored, as is usual for HTTP APIs; don't count them as errors.
    schema.config.generation.update(deterministic=True, database="none", allow_extra_parameters=False)
    return schema


@pytest.fixture
def identities(make_user):
    return {role or "anonymous": ({"Authorization": f"Token {make_user(role)[1]}"} if role else {})
            for role in IDENTITIES}


@pytest.fixture
def existing_objects(topic, admin_client_api):
    """Some objects for the generated ids and phones to find now and then."""
    from consent import services
    from consent.models import Source

    for n in range(3):
        services.optin_request(phone=f"+1415555{n:04d}", topic=topic, channel="sms", source=Source.API, evidence={})
    response = admin_client_api.post("/api/v1/broadcasts/", {"name": "b", "topic": "promo", "channel": "sms",
                                                             "body": "Hello"}, format="json")
    assert response.status_code == 201, response.content


# A string the schema allows is often not a phone number or a live token: a 400 for it is right.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


REQUESTS = Counter()  # (mode, identity) -> requests sent, printed with -s for docs/reliability.md


def _failures(api_schema, identities, mode):
    failures = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25, "the schema lost operations"
    for operation in operations:
        @settings(HYPOTHESIS, max_examples=MAX_EXAMPLES[mode])
        @given(case=operation.as_strategy(generation_mode=mode))
        def exercise(case):
            for who, headers in identities.items():
                response = case.call(headers=headers)
                REQUESTS[(str(mode), who)] += 1
                assert response.status_code < 500, f"{who}: {response.status_code} {response.text[:300]}"
                try:
                    case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)
                except BaseException as exc:  # schemathesis' FailureGroup is a BaseException
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    raise AssertionError(f"{who}: {exc}") from None

        try:
            exercise()
        except Unsatisfiable:  # negative mode on an operation with no input to get wrong
            continue
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's first failure, then report them all
            failures[operation.label] = str(exc)[:1500]
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_conforms_for_every_identity(api_schema, identities, existing_objects, mode):
    failures = _failures(api_schema, identities, mode)
    print(f"schemathesis {mode}: {sum(n for (m, _), n in REQUESTS.items() if m == str(mode))} requests")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
