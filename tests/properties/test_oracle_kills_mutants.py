"""The interleaving test is not vacuous: with the send-time gate broken it must fail.

Two mutants of the gate (`Consent.objects.may_receive_promotion`, which the claim asks as
`promotable()` once per send task and `current(now)` per claim): one lets every consent row
through, one forgets expiry and suppression. The property test, run against each, must find a
message handed over without a current consent.
"""

import pytest

from consent.models import ConsentQuerySet

from .test_consent_interleavings import fast_broadcasts, sending, topics  # noqa: F401  (fixtures)
from .test_consent_interleavings import test_rules_hold_under_random_interleavings as property_test

pytestmark = pytest.mark.django_db

MUTANTS = {
    "gate lets everyone through": {
        "may_receive_promotion": lambda consents, now: consents,
        "promotable": lambda consents: consents,
        "current": lambda consents, now: consents,
    },
    "gate forgets expiry and suppression": {
        "may_receive_promotion": lambda consents, now: consents.filter(status="active"),
        "promotable": lambda consents: consents,
        "current": lambda consents, now: consents.filter(status="active"),
    },
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_broken_gate_is_caught(mutant, topics, fast_broadcasts, run_on_commit, monkeypatch):  # noqa: F811
    for method, broken in MUTANTS[mutant].items():
        monkeypatch.setattr(ConsentQuerySet, method, broken)
    with pytest.raises(AssertionError, match="handed over to contact"):
        property_test(topics=topics, fast_broadcasts=None, run_on_commit=run_on_commit, monkeypatch=monkeypatch)
