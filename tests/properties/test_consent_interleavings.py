"""Random interleavings of everything that touches consent, with time moved explicitly.

Steps: opt-in requests (API/web form), inbound keywords in English and French on both channels
(YES/OUI, STOP/ARRÊT, STOP <topic>, START, JOIN <topic>, a topic keyword alone, HELP/AIDE, free
text), provider redeliveries of an inbound message, confirmation links used in and out of their
window, legacy imports (some older than the topic's lifetime), the expiry job, erasure, and
broadcasts (with and without quiet hours) during which a STOP may land between two sends; time
jumps by minutes, hours, the 48-hour window's edges and whole consent lifetimes.

After every step:
  1. no promotional message left for anyone whose consent was not current at that very instant
     (checked inside the provider call, against the ledger replay, not against the code's rows),
  2. no broadcast × contact got two messages,
  3. the Consent rows equal the projection rebuilt from the ledger events alone,
  4. the hash chain verifies.
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import count

import pytest
import time_machine
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from hypothesis import example, given, settings
from hypothesis import strategies as st

from broadcasts import sending
from broadcasts import services as broadcast_services
from broadcasts.models import Delivery
from broadcasts.tasks import broadcasts_tick_task
from consent import inbound, services
from consent.erasure import contact_erase
from consent.ledger import pseudonym_for
from consent.models import Contact, Source, Suppression
from consent.verification import verify_ledger
from consent.webhooks.parsers import InboundMessage
from messaging.providers import SendResult
from tests.prompts import Outbox

from .conftest import PROFILE
from .replay import replay, stored_states

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 15, 0, tzinfo=dt_timezone.utc)  # a Monday: inside US and FR sending hours
PHONES = ["+12125550101", "+12125550102", "+13105550103", "+33612000104", "+33612000105"]
CHANNELS = ["sms", "whatsapp"]
TOPICS = ["promo", "news"]
TEXTS = ["YES", "y", "Oui !", "confirm", "STOP", "stop.", "Arrêt", "désabonner", "STOP PROMO", "stop news",
         "START", "unstop", "JOIN PROMO", "join news", "PROMO", "NEWS", "HELP", "aide", "info", "hello there"]
JUMPS = [timedelta(minutes=1), timedelta(hours=3), timedelta(hours=47, minutes=59), timedelta(hours=48, minutes=1),
         timedelta(days=1), timedelta(days=200), timedelta(days=366), timedelta(hours=9), timedelta(hours=7),
         timedelta(hours=11), timedelta(hours=13, minutes=30), timedelta(days=1, hours=10)]

phone_i = st.integers(0, len(PHONES) - 1)
IMPORT = st.tuples(st.just("import"), phone_i, st.sampled_from(CHANNELS), st.sampled_from(TOPICS),
                   st.sampled_from([1, 30, 364, 366, 1000]))
# (weight, strategy): biased towards building audiences and broadcasting to them.
WEIGHTED = [
    (3, st.tuples(st.just("optin"), phone_i, st.sampled_from(CHANNELS), st.sampled_from(TOPICS))),
    (3, st.tuples(st.just("inbound"), phone_i, st.sampled_from(CHANNELS), st.sampled_from(TEXTS))),
    (3, st.tuples(st.just("inbound"), phone_i, st.sampled_from(CHANNELS), st.sampled_from(["YES", "OUI", "STOP"]))),
    (1, st.tuples(st.just("redeliver"), st.integers(0, 50))),
    (2, st.tuples(st.just("confirm_link"), st.integers(0, 50))),
    (2, st.tuples(st.just("advance"), st.sampled_from(JUMPS))),
    (3, IMPORT),
    (1, st.tuples(st.just("expire"))),
    (1, st.tuples(st.just("erase"), phone_i)),
    (4, st.tuples(st.just("broadcast"), st.sampled_from(CHANNELS), st.sampled_from(TOPICS), st.booleans(),
                  st.one_of(st.tuples(st.integers(0, 4), phone_i), st.none()))),
    (1, st.tuples(st.just("tick"))),
    (3, st.tuples(st.just("later"), st.sampled_from(JUMPS))),  # time passes, then the beat's upkeep runs
]
steps = st.sampled_from([strategy for weight, strategy in WEIGHTED for _ in range(weight)]).flatmap(lambda strategy: strategy)


class RecordingProvider:
    """Stands in for the provider of broadcasts and judges every hand-over against the ledger.

    The hand-over instant is the claim (broadcasts/sending.py: rows claimed together, with their
    consent re-checked in the claim's transaction, go to the provider at once). The claim is
    wrapped so that each claimed message is judged at that instant against the ledger replay;
    the provider then checks that it only receives judged messages and counts them.
    """

    name = "recording"

    def __init__(self):
        self.sent = []  # (broadcast_id, contact_id)
        self.violations = []
        self.judged = set()
        self.before_send = None

    def judge_claims(self, broadcast, batch, now):
        states, facts = replay()
        for claim in batch.claims:
            contact_id = claim.contact.pk
            state = states.get((contact_id, broadcast.topic_id, broadcast.channel))
            erased = facts.get(contact_id) is not None and facts[contact_id].erased
            suppressed = Suppression.objects.filter(phone_pseudonym=pseudonym_for(claim.message.to)).exists()
            if state is None or not state.is_current(now) or suppressed or erased:
                self.violations.append(f"handed over to contact {contact_id} for broadcast {broadcast.pk} at {now} "
                                       f"with consent {state} suppressed={suppressed} erased={erased}")
            self.judged.add(claim.message.reference)

    def send(self, message):
        if self.before_send:
            self.before_send(len(self.sent))
        if message.reference not in self.judged:
            self.violations.append(f"{message.reference} reached the provider without a claim")
        delivery = Delivery.objects.get(pk=int(message.reference.split("-")[1]))
        self.sent.append((delivery.broadcast_id, delivery.contact_id))
        return SendResult(provider_message_id=f"rec-{len(self.sent)}")


def _judging(claim_batch, provider):
    def claim_and_judge(*, broadcast, lo, hi, limit, now, queries=None):
        batch = claim_batch(broadcast=broadcast, lo=lo, hi=hi, limit=limit, now=now, queries=queries)
        if batch is not None:
            provider.judge_claims(broadcast, batch, now)
        return batch

    return claim_and_judge


@pytest.fixture
def topics(db):
    promo = services.topic_create(slug="promo", name="Acme promotions", keywords=["PROMO"],
                                  consent_text="I agree to Acme promotions.", help_message="Acme help: help@acme.example. STOP to stop.",
                                  confirmation_message="Acme: reply YES to confirm, STOP to cancel.", consent_ttl_days=365)
    news = services.topic_create(slug="news", name="Acme news", keywords=["NEWS"], consent_text="I agree to Acme news.",
                                 confirmation_message="Acme news: reply YES to confirm, STOP to cancel.",
                                 help_message="Acme news help. STOP to stop.", consent_ttl_days=None)
    return {"promo": promo, "news": news}


@pytest.fixture
def fast_broadcasts(settings):
    settings.BROADCAST_SEND_CONCURRENCY = 1
    settings.BROADCAST_RATE_LIMITS = {}
    settings.BROADCAST_CLAIM_SIZE = 2
    settings.BROADCAST_BATCH_SIZE = 3
    settings.BROADCAST_ERROR_RATE_MIN_SAMPLE = 1000


class World:
    def __init__(self, topics, provider, run_on_commit, traveller, outbox):
        self.topics, self.provider, self.run_on_commit, self.traveller = topics, provider, run_on_commit, traveller
        self.outbox = outbox  # the prompts' tokens exist only in what the provider was handed
        self.inbound_sent = []
        self.ids = count(1)

    def do(self, step):
        kind, *args = step
        with self.run_on_commit():
            getattr(self, f"step_{kind}")(*args)

    def step_optin(self, i, channel, slug):
        try:
            services.optin_request(phone=PHONES[i], topic=self.topics[slug], channel=channel,
                                   source=Source.WEB_FORM, evidence={"ip": "192.0.2.7", "page_url": "https://x/"})
        except (ValidationError, services.OptinLimited):  # suppressed, erased or pumped: nothing changes
            return

    def _inbound(self, message):
        inbound.inbound_message_receive(message=message, provider="twilio" if message.channel == "sms" else "whatsapp_cloud")

    def step_inbound(self, i, channel, text):
        message = InboundMessage(channel=channel, provider_message_id=f"M{next(self.ids):06d}", sender=PHONES[i],
                                 text=text, received_at=timezone.now())
        self.inbound_sent.append(message)
        self._inbound(message)

    def step_redeliver(self, k):
        if self.inbound_sent:
            self._inbound(self.inbound_sent[k % len(self.inbound_sent)])

    def step_confirm_link(self, k):
        tokens = self.outbox.tokens()
        if tokens:
            try:
                services.optin_confirm_by_token(token=tokens[k % len(tokens)], source=Source.WEB_FORM,
                                                evidence={"ip": "192.0.2.8"})
            except ValidationError:  # used, expired, or nothing left to confirm
                pass

    def step_advance(self, delta):
        self.traveller.shift(delta)

    def step_import(self, i, channel, slug, days_ago):
        record = services.ImportRecord(phone=PHONES[i], topic=self.topics[slug], channel=channel,
                                       confirmed_at=timezone.now() - timedelta(days=days_ago),
                                       evidence={"form": "legacy", "ip": "198.51.100.1"}, source_detail="crm")
        services.consents_import(records=[record], actor="admin-user")

    def step_expire(self):
        services.consents_expire_due()

    def step_erase(self, i):
        contact = Contact.objects.filter(phone_pseudonym=pseudonym_for(PHONES[i])).first()
        if contact is not None:
            contact_erase(contact=contact, actor="admin-user", reason="request")

    def step_broadcast(self, channel, slug, quiet_hours, stop_during):
        content = ({"body": "Acme sale today! Reply STOP to opt out."} if channel == "sms" else
                   {"template": {"name": "sale", "language": "en_US", "components": []}})
        broadcast = broadcast_services.broadcast_create(name="sale", topic=self.topics[slug], channel=channel,
                                                        respect_quiet_hours=quiet_hours, **content)
        if stop_during is not None:
            at, i = stop_during

            def stop_lands(n_sent):
                if n_sent == at:
                    self.provider.before_send = None
                    message = InboundMessage(channel=channel, provider_message_id=f"M{next(self.ids):06d}",
                                             sender=PHONES[i], text="STOP", received_at=timezone.now())
                    self.inbound_sent.append(message)
                    self._inbound(message)

            self.provider.before_send = stop_lands
        broadcast_services.broadcast_schedule(broadcast=broadcast)

    def step_later(self, delta):
        self.step_advance(delta)
        self.step_tick()

    def step_tick(self):
        self.provider.before_send = None
        broadcasts_tick_task()

    def check(self, history):
        where = f"after steps {history}"
        assert not self.provider.violations, f"{self.provider.violations[0]} {where}"
        sent = self.provider.sent
        assert len(sent) == len(set(sent)), f"a broadcast × contact got two messages {where}"
        states, _ = replay()
        stored = stored_states()
        assert stored == states, f"Consent rows differ from the ledger replay {where}:\n" + "\n".join(
            f"{k}: stored={stored.get(k)} replay={states.get(k)}" for k in sorted(set(stored) | set(states))
            if stored.get(k) != states.get(k))
        report = verify_ledger()
        assert report.ok, f"chain broken: {report.summary()} {where}"


def _imports(*indexes, channel="sms", slug="promo", days=30):
    return [("import", i, channel, slug, days) for i in indexes]


@settings(PROFILE)
# Always run, whatever Hypothesis draws: the situations the rules are about.
@example(seed=_imports(0, 1, 2, 3), plan=[("broadcast", "sms", "promo", False, (1, 2)),  # STOP between two claims
                                         ("broadcast", "sms", "promo", True, (0, 3))])
@example(seed=_imports(0, 3, 4) + _imports(0, 4, channel="whatsapp"),  # deferred for FR quiet hours, then STOP
         plan=[("advance", timedelta(hours=7)), ("broadcast", "sms", "promo", True, None),
               ("inbound", 3, "sms", "ARRÊT"), ("later", timedelta(hours=11)),
               ("broadcast", "whatsapp", "promo", True, None), ("erase", 4), ("later", timedelta(hours=11))])
@example(seed=_imports(0, 1, days=364), plan=[  # deferred (23:30 in New York) past the consent's lifetime
    ("advance", timedelta(hours=13, minutes=30)), ("broadcast", "sms", "promo", True, None),
    ("later", timedelta(days=1, hours=10)), ("expire",)])
@example(seed=_imports(0), plan=[  # double opt-in by keyword and by link, window edges, redelivered STOP
    ("optin", 1, "sms", "news"), ("advance", timedelta(hours=47, minutes=59)), ("inbound", 1, "sms", "Oui !"),
    ("optin", 2, "whatsapp", "promo"), ("advance", timedelta(hours=48, minutes=1)), ("confirm_link", 1),
    ("inbound", 2, "whatsapp", "YES"), ("broadcast", "sms", "news", False, None), ("inbound", 1, "sms", "STOP NEWS"),
    ("redeliver", 2), ("inbound", 1, "sms", "START"), ("inbound", 1, "sms", "yes"), ("broadcast", "sms", "news", True, None),
    ("import", 1, "sms", "news", 1), ("inbound", 0, "sms", "aide"), ("later", timedelta(days=366)),
    ("broadcast", "sms", "promo", False, None)])
@given(seed=st.lists(IMPORT, min_size=1, max_size=5),
       plan=st.lists(steps, min_size=4, max_size=PROFILE.stateful_step_count))
def test_rules_hold_under_random_interleavings(seed, plan, topics, fast_broadcasts, run_on_commit, monkeypatch):
    provider = RecordingProvider()
    monkeypatch.setattr(sending, "thread_provider", lambda channel: provider)
    monkeypatch.setattr(sending, "claim_batch", _judging(sending.claim_batch, provider))
    cache.clear()  # the pumping limits' counters, so that every example starts alike
    outbox = Outbox()
    with transaction.atomic(), outbox.record():  # each example starts from the same state and leaves none behind
        with time_machine.travel(START, tick=False) as traveller:
            world = World(topics, provider, run_on_commit, traveller, outbox)
            plan = seed + plan
            for n, step in enumerate(plan):
                world.do(step)
                world.check(plan[: n + 1])
        transaction.set_rollback(True)
