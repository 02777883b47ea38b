"""Settings shared by every environment. Everything that varies comes from the environment."""

import os
from collections.abc import Mapping
from pathlib import Path

import dj_database_url
import environ
from django.core.exceptions import ImproperlyConfigured

from config.datadir import private_dir, private_file


class SetVariables(Mapping):
    """The process environment without its empty variables: an empty value means "unset, use the default"."""

    def __getitem__(self, name):
        value = os.environ[name]
        if value == "":
            raise KeyError(name)
        return value

    def __iter__(self):
        return (name for name, value in os.environ.items() if value != "")

    def __len__(self):
        return sum(1 for _ in self)


env = environ.Env()
env.ENVIRON = SetVariables()
# django-environ reads a value starting with "$" as the name of another variable; "\$" is a literal "$".
env.escape_proxy = True

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = private_dir(Path(env.str("DATA_DIR", str(BASE_DIR / "data"))))  # 0700: database and keys

SECRET_KEY = env.str("DJANGO_SECRET_KEY", "insecure-development-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", cast=str.strip,
                         default=["localhost", "127.0.0.1", "[::1]", "testserver"])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", cast=str.strip, default=[PUBLIC_BASE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files of our own: the docs work offline
    "consent",
    "broadcasts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.nul.RejectNulMiddleware",  # PostgreSQL cannot store NUL: 400 at the edge, not a 500
    "config.webhook_lane.WebhookLaneMiddleware",  # provider webhooks: their view, none of the browser's middleware
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.timezones.WorkspaceTimeZoneMiddleware",  # staff pages in WORKSPACE_TIME_ZONE, labelled
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.timezones.workspace_context",
            ],
        },
    },
]

# Database: DATABASE_URL, else an SQLite file under the data folder.
DATABASES = {
    "default": dj_database_url.parse(
        env.str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'consent.sqlite3'}"),
        conn_max_age=env.int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters bound by the server, and statements run often (every webhook's handful) prepared
    # once per connection: PostgreSQL then skips parsing and planning them on each request.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=env.bool("DATABASE_SERVER_SIDE_BINDING", True),
        prepare_threshold=env.int("DATABASE_PREPARE_THRESHOLD", 5),
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every transaction take the write lock at BEGIN, so concurrent
    # writers queue up instead of failing with "database is locked" half-way through.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASES["default"]["NAME"] and DATABASES["default"]["NAME"] != ":memory:":
        private_file(DATABASES["default"]["NAME"])  # 0600 before SQLite creates it world-readable

# PostgreSQL: the role web, worker and beat log in as (migrate, run as the owner, creates it and grants
# it what the application needs, and only appending on the ledger tables). DATABASE_APP_PASSWORD sets
# its password when migrate creates it.
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", "consent_app")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The time zone the marketers' workspace (admin, dashboard, broadcast pages) shows times in, labelled.
WORKSPACE_TIME_ZONE = env.str("WORKSPACE_TIME_ZONE", TIME_ZONE)
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Cache: Redis when REDIS_URL is set (shared by every process), otherwise the database.
REDIS_URL = env.str("REDIS_URL", None)
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "consent_cache",
        }
    }

# Celery: the broker from CELERY_BROKER_URL, else a file-system broker under the data folder
# that needs no server (worker, beat and web share it on one machine).
# The folder transport ignores the host; without one kombu warns "No hostname was supplied" on every publish.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = DATA_DIR / "broker"
    _queue_dir.mkdir(mode=0o700, exist_ok=True)
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(mode=0o700, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "control_folder": str(_queue_dir / "control"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
    }
else:
    # Seconds before Redis redelivers a task whose worker died without acking it (acks_late tasks).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Read by every publish (a worker's inbound batch publishes one reply per message). Left unset, Celery looks
# each of them up here under two names that are not settings, each miss an AttributeError, before its own
# default. Set to Celery's defaults: 386 -> 317 us of CPU per publish in one producer batch, 766 -> 691 one
# by one (bench/enqueue.py, alternating: bench/results/enqueue-celery-defaults-alternating.json).
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TASK_REPR_MAXLEVELS = 3
CELERY_BROKER_POOL_ACQUIRE_TIMEOUT = None
CELERY_BEAT_SCHEDULE = {
    "consent-expire-due": {"task": "consent.tasks.consents_expire_due_task", "schedule": 300.0},
    "messages-upkeep": {"task": "consent.tasks.messages_upkeep_task", "schedule": 60.0},
    "ledger-checkpoint": {"task": "consent.audit.tasks.ledger_checkpoint_task", "schedule": 900.0},
    # Reviews still unresolved at their deadline are applied as revocations (within a minute of it).
    "revocation-reviews-due": {"task": "consent.tasks.revocation_reviews_apply_due_task", "schedule": 60.0},
    "ledger-verify-full": {"task": "consent.audit.tasks.ledger_verify_task", "schedule": 86400.0},
    "consent-retention": {"task": "consent.tasks.retention_erase_task", "schedule": 86400.0},
    # The safety net of inbound intake: applies what a lost or crashed apply task left (docs/inbound.md).
    "inbound-apply": {"task": "consent.tasks.inbound_apply_task",
                      "schedule": env.float("INBOUND_APPLY_SWEEP_SECONDS", 10.0)},
    "inbound-receipts-prune": {"task": "consent.tasks.inbound_receipts_prune_task", "schedule": 86400.0},
    "broadcasts-tick": {"task": "broadcasts.tasks.broadcasts_tick_task",
                        "schedule": env.float("BROADCAST_TICK_SECONDS", 5.0)},
}
if REDIS_URL:
    # Webhooks kept in Redis during a database outage go back to the database (one XLEN when there are none).
    CELERY_BEAT_SCHEDULE["inbound-fallback-drain"] = {"task": "consent.tasks.inbound_fallback_drain_task",
                                                      "schedule": env.float("INBOUND_FALLBACK_DRAIN_SECONDS", 2.0)}
# Only the signer (`celery -A config worker -Q audit-signer --concurrency 1`) holds AUDIT_SIGNING_KEY.
CELERY_TASK_ROUTES = {"consent.audit.tasks.ledger_checkpoint_task": {"queue": "audit-signer"}}
# Inbound applying may have workers of its own (`-Q inbound`), so that no broadcast's tasks delay a STOP.
INBOUND_APPLY_QUEUE = env.str("INBOUND_APPLY_QUEUE", "")
if INBOUND_APPLY_QUEUE:
    CELERY_TASK_ROUTES["consent.tasks.inbound_apply_task"] = {"queue": INBOUND_APPLY_QUEUE}
# Seconds the intake's trigger key lives: at most one apply task queued per this while one waits.
INBOUND_APPLY_TRIGGER_SECONDS = env.int("INBOUND_APPLY_TRIGGER_SECONDS", 5)
# Seconds an apply task waits after the webhook that queued it, gathering the messages that follow into
# its batches (0: at once): a few rows per batch and a task each cost the worker more per row (docs/inbound.md).
INBOUND_APPLY_GATHER_SECONDS = env.float("INBOUND_APPLY_GATHER_SECONDS", 0.2)
if not 0 <= INBOUND_APPLY_GATHER_SECONDS < INBOUND_APPLY_TRIGGER_SECONDS:
    raise ImproperlyConfigured("INBOUND_APPLY_GATHER_SECONDS must be at least 0 and less than "
                               f"INBOUND_APPLY_TRIGGER_SECONDS ({INBOUND_APPLY_TRIGGER_SECONDS}), "
                               "which keeps other webhooks from queueing another task meanwhile.")
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["consent.permissions.IsAdminRole"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.LimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": ["config.nul.JSONParser", "config.nul.FormParser", "config.nul.MultiPartParser"],
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "consent.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# The largest page of any list (`?limit=`, `?page_size=`): a larger value is clamped to it.
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", 1000)

SPECTACULAR_SETTINGS = {
    "TITLE": "Consent manager API",
    "DESCRIPTION": "Double opt-in consent, an append-only consent ledger, and consent-gated broadcasts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "ENUM_NAME_OVERRIDES": {
        # Messages and deliveries share the outbound lifecycle's one status set.
        "OutboundStatusEnum": "messaging.lifecycle.Status",
        "MessageKindEnum": "consent.models.Message.Kind",
        "BroadcastStatusEnum": "broadcasts.models.BroadcastStatus",
    },
    "SERVE_AUTHENTICATION": [],
    # No "validator" badge: it would send the schema's URL to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Providers. "console" logs and stores messages; it is the default without credentials.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_API_BASE = env.str("TWILIO_API_BASE", "https://api.twilio.com").rstrip("/")
SMS_PROVIDER = env.str("SMS_PROVIDER", "twilio" if TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN else "console")

WHATSAPP_ACCESS_TOKEN = env.str("WHATSAPP_ACCESS_TOKEN", "")
WHATSAPP_PHONE_NUMBER_ID = env.str("WHATSAPP_PHONE_NUMBER_ID", "")
WHATSAPP_APP_SECRET = env.str("WHATSAPP_APP_SECRET", "")
WHATSAPP_VERIFY_TOKEN = env.str("WHATSAPP_VERIFY_TOKEN", "")
WHATSAPP_OPTIN_TEMPLATE = env.str("WHATSAPP_OPTIN_TEMPLATE", "optin_confirmation")
WHATSAPP_OPTIN_TEMPLATE_LANGUAGE = env.str("WHATSAPP_OPTIN_TEMPLATE_LANGUAGE", "en_US")
# The approved utility template a care reply uses outside the 24-hour window (no parameters).
WHATSAPP_CARE_TEMPLATE = env.str("WHATSAPP_CARE_TEMPLATE", "care_follow_up")
WHATSAPP_CARE_TEMPLATE_LANGUAGE = env.str("WHATSAPP_CARE_TEMPLATE_LANGUAGE", "en_US")
WHATSAPP_API_BASE = env.str("WHATSAPP_API_BASE", "https://graph.facebook.com/v23.0").rstrip("/")
WHATSAPP_PROVIDER = env.str("WHATSAPP_PROVIDER", "cloud" if WHATSAPP_ACCESS_TOKEN else "console")

# Connect and read timeouts (seconds) for every provider call.
PROVIDER_TIMEOUT = (env.float("PROVIDER_CONNECT_TIMEOUT", 3.05), env.float("PROVIDER_READ_TIMEOUT", 10.0))

# Consent rules.
CONSENT_CONFIRMATION_WINDOW_HOURS = env.int("CONSENT_CONFIRMATION_WINDOW_HOURS", 48)
CONSENT_TOKEN_MAX_AGE_HOURS = env.int("CONSENT_TOKEN_MAX_AGE_HOURS", CONSENT_CONFIRMATION_WINDOW_HOURS)
# How long a preference-centre link (in every HELP reply) opens the person's page.
CONSENT_PREFERENCE_LINK_MAX_AGE_DAYS = env.int("CONSENT_PREFERENCE_LINK_MAX_AGE_DAYS", 30)
# Key for the pseudonym of a phone number in the ledger and the suppression list (HMAC-SHA256):
# its own secret, so rotating DJANGO_SECRET_KEY changes no pseudonym. Unset: a development key
# generated under the data folder on first use (production refuses to start without it).
CONSENT_PSEUDONYM_KEY = env.str("CONSENT_PSEUDONYM_KEY", "")
CONSENT_PSEUDONYM_KEY_FILE = DATA_DIR / "consent-pseudonym-key"
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", None)
# What a revocation without a topic (a bare STOP, a revocation in other words, a review, staff) revokes:
# "channel", every topic on the channel it came from; "all", every topic on every channel of the number
# (47 CFR §64.1200(a)(10) as amended by FCC 24-24, in force 2027-01-31).
CONSENT_REVOKE_SCOPE = env.str("CONSENT_REVOKE_SCOPE", "channel")
if CONSENT_REVOKE_SCOPE not in ("channel", "all"):
    raise ImproperlyConfigured(f"CONSENT_REVOKE_SCOPE must be channel or all, not {CONSENT_REVOKE_SCOPE!r}.")
# The brand the confirmation of a revocation names (CTIA: the program's name). Empty: the names of
# the topics revoked.
CONSENT_BRAND_NAME = env.str("CONSENT_BRAND_NAME", "")
# Topics whose texts lack what the messaging principles ask for (brand, frequency, rates, HELP, STOP:
# consent/text_checks.py): "warn" lists them as warnings (API, admin); "strict" refuses the topic.
CONSENT_TEXT_CHECKS = env.str("CONSENT_TEXT_CHECKS", "warn")
if CONSENT_TEXT_CHECKS not in ("warn", "strict"):
    raise ImproperlyConfigured(f"CONSENT_TEXT_CHECKS must be warn or strict, not {CONSENT_TEXT_CHECKS!r}.")
# Retention (CNIL: prospects' data 3 years from their last contact): a contact with no current consent and
# nothing from them for this many days has its personal data erased (the ledger and the suppression stay).
CONSENT_RETENTION_DAYS = env.int("CONSENT_RETENTION_DAYS", 1095)
# Who a consent receipt (Kantara Consent Receipt v1.1) names as the PII controller, and its privacy policy.
CONSENT_CONTROLLER_NAME = env.str("CONSENT_CONTROLLER_NAME", "")
CONSENT_CONTROLLER_CONTACT = env.str("CONSENT_CONTROLLER_CONTACT", "")
CONSENT_CONTROLLER_ADDRESS = env.str("CONSENT_CONTROLLER_ADDRESS", "")
CONSENT_CONTROLLER_EMAIL = env.str("CONSENT_CONTROLLER_EMAIL", "")
CONSENT_CONTROLLER_PHONE = env.str("CONSENT_CONTROLLER_PHONE", "")
CONSENT_POLICY_URL = env.str("CONSENT_POLICY_URL", "")
CONSENT_RECEIPT_JURISDICTION = env.str("CONSENT_RECEIPT_JURISDICTION", "")  # when the number's country is unknown
CONSENT_RECEIPT_LANGUAGE = env.str("CONSENT_RECEIPT_LANGUAGE", "en")

# Ed25519 private key (PEM) that signs ledger checkpoints and export manifests: the signer's only.
AUDIT_SIGNING_KEY = env.str("AUDIT_SIGNING_KEY", "")
# Its public key (PEM or raw base64), for every process that verifies but does not sign.
AUDIT_PUBLIC_KEY = env.str("AUDIT_PUBLIC_KEY", "")
# Where signed checkpoints are also written, write-once, outside the database (a directory, or scheme://).
AUDIT_CHECKPOINT_SINK = env.str("AUDIT_CHECKPOINT_SINK", str(DATA_DIR / "checkpoints"))
if AUDIT_CHECKPOINT_SINK == str(DATA_DIR / "checkpoints"):
    (DATA_DIR / "checkpoints").mkdir(mode=0o700, exist_ok=True)
AUDIT_SIGNING_KEY_FILE = DATA_DIR / "audit-signing-key.pem"
# After a key rotation: the retired public keys (PEM or raw base64, comma-separated) whose checkpoints still count.
AUDIT_PREVIOUS_PUBLIC_KEYS = env.str("AUDIT_PREVIOUS_PUBLIC_KEYS", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}",
                                     "style": "{"}},
    # Every handler masks phone numbers, tokens, Authorization headers and provider secrets.
    "filters": {"personal_data": {"()": "config.logging.PersonalDataFilter"},
                # The broadcast tick every few seconds: its beat and worker lines at DEBUG.
                "quiet_tick": {"()": "config.logging.DemoteToDebug",
                               "names": ["broadcasts-tick", "broadcasts.tasks.broadcasts_tick_task[",
                                         "inbound-fallback-drain", "consent.tasks.inbound_fallback_drain_task["]}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["personal_data"]},
                 "django.server": {"class": "logging.StreamHandler", "formatter": "django.server",
                                   "filters": ["personal_data"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
    # Django's default handlers mask nothing, and "django" also propagates to root: every warning came
    # twice in development, once unmasked. Here "django" only propagates; runserver's access log masks.
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True},
                "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
                "django.db.backends": {"level": "WARNING"},
                **{name: {"filters": ["quiet_tick"]} for name in ("celery.beat", "celery.worker.strategy",
                                                                 "celery.app.trace")}},
}

# Inbound keywords (whole message, folded for case, accents, spaces and punctuation).
CONSENT_KEYWORDS = {
    "stop": ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT",
             "ARRET", "ARRÊT", "DESABONNER", "DÉSABONNER", "DESINSCRIPTION"],
    "start": ["START", "UNSTOP"],
    "join": ["JOIN"],
    "confirm": ["YES", "Y", "CONFIRM", "OUI"],
    "help": ["HELP", "INFO", "AIDE"],
}

# Broadcasts (defaults and the rest in broadcasts/conf.py). Messages per second per sender,
# shared by every worker; 0 turns the limit off.
BROADCAST_RATE_LIMITS = {
    "sms": env.float("BROADCAST_SMS_RATE_PER_SECOND", 10.0),
    "whatsapp": env.float("BROADCAST_WHATSAPP_RATE_PER_SECOND", 80.0),
}
BROADCAST_SEND_CONCURRENCY = env.int("BROADCAST_SEND_CONCURRENCY", 32)
BROADCAST_BATCH_SIZE = env.int("BROADCAST_BATCH_SIZE", 500)
BROADCAST_CLAIM_SIZE = env.int("BROADCAST_CLAIM_SIZE", 32)
# Jurisdiction policies (broadcasts/policies.py): a brand may narrow windows and add caps, never widen
# them (refused at start). JSON keyed by jurisdiction ("US-FL", "US", "FR", "default", "*" for every one):
# BROADCAST_QUIET_HOURS='{"US": {"start": "09:00"}}', BROADCAST_CAPS='{"*": [{"count": 5, "hours": 168, "scope": "all"}]}'.
BROADCAST_QUIET_HOURS = env.json("BROADCAST_QUIET_HOURS", default={})
BROADCAST_CAPS = env.json("BROADCAST_CAPS", default={})
# WhatsApp messaging limit: new unique recipients per rolling 24 h across broadcasts (the business's tier:
# 250, 2000, 10000, 100000; 0 for unlimited). Recipients beyond it are deferred.
WHATSAPP_MESSAGING_LIMIT = env.int("WHATSAPP_MESSAGING_LIMIT", 250)

# Customers' side: SMS-pumping limits on prompts (every source; the per-IP one on the hosted page), webhooks.
# Addresses/networks whose X-Forwarded-For is believed.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", cast=str.strip, default=[])
OPTIN_ALLOWED_COUNTRIES = env.list("OPTIN_ALLOWED_COUNTRIES", cast=str.strip, default=[])  # empty: every country
OPTIN_MAX_PER_IP_PER_HOUR = env.int("OPTIN_MAX_PER_IP_PER_HOUR", 10)
OPTIN_MAX_PER_NUMBER_PER_HOUR = env.int("OPTIN_MAX_PER_NUMBER_PER_HOUR", 3)
OPTIN_MAX_PER_NUMBER_PER_DAY = env.int("OPTIN_MAX_PER_NUMBER_PER_DAY", 5)
OPTIN_MAX_PER_API_USER_PER_HOUR = env.int("OPTIN_MAX_PER_API_USER_PER_HOUR", 1000)
OPTIN_REPEAT_PROMPT_AFTER_MINUTES = env.int("OPTIN_REPEAT_PROMPT_AFTER_MINUTES", 10)  # a fresh pending prompt is not resent
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", 262144)
# The inbound fallback (consent/intake/fallback.py, REDIS_URL; none without it): the stream's key, the timeout of
# every Redis call it makes, and how long promotional sends wait while webhooks are kept there.
INBOUND_FALLBACK_KEY = env.str("INBOUND_FALLBACK_KEY", "consent:inbound-fallback")
INBOUND_FALLBACK_TIMEOUT = env.float("INBOUND_FALLBACK_TIMEOUT", 1.0)
INBOUND_FALLBACK_HOLD_SECONDS = env.float("INBOUND_FALLBACK_HOLD_SECONDS", 5.0)
# Queued transactional messages older than this are handed to the broker again (broker outages).
MESSAGE_REQUEUE_AFTER_SECONDS = env.int("MESSAGE_REQUEUE_AFTER_SECONDS", 900)
