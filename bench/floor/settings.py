"""A bare Django project for the floor: no apps, no middleware, the benchmark's database."""

import os

import dj_database_url

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.floor.urls"
WSGI_APPLICATION = "bench.floor.wsgi.application"
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60, conn_health_checks=True)}
# The service's own PostgreSQL options, so that the one INSERT costs what it costs there.
DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
USE_TZ = True
TIME_ZONE = "UTC"
TWILIO_AUTH_TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
PUBLIC_BASE_URL = os.environ["PUBLIC_BASE_URL"]
TABLE = "bench_floor_receipt"
CREATE_TABLE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, sid varchar(128) UNIQUE NOT NULL, "
                "sender varchar(32) NOT NULL, body text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())")
