#!/usr/bin/env python3
"""The production shape, proven without Docker: docker-compose.yml's commands and environment, run
from a virtualenv built from requirements.txt alone (the Dockerfile's install step), against
loopback PostgreSQL + Redis and then the embedded default (SQLite + file-system broker).

A black-box flow over HTTP only: readiness, an API user, a topic, two double opt-ins confirmed by
signed Twilio "YES" webhooks, a broadcast delivered exactly once to each at the provider stand-in
(tests/stand_in.py), a signed STOP, a second broadcast reaching only the other contact, then the
ledger's export and verification. Exits non-zero with the reason on the first failure.

Run with a Python that has PyYAML (the dev venv): .venv/bin/python .ci/production.py
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STARTED = time.monotonic()
# The processes under test, stopped on every exit path.
RUNNING: list[tuple[str, subprocess.Popen, Path]] = []
PHONES = ("+14155550101", "+14155550102")  # California: no state cap; quiet hours lifted per broadcast
TWILIO_SID = "AC" + "c1" * 16
TWILIO_TOKEN = secrets.token_hex(16)
TWILIO_FROM = "+14155550100"


class StageFailure(Exception):
    pass


def say(text: str) -> None:
    print(f"[production {time.monotonic() - STARTED:6.1f}s] {text}", flush=True)


def fail(text: str):
    raise StageFailure(text)


def wait_for(what: str, probe, timeout: float, interval: float = 0.5):
    """Call probe() until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        for name, process, log in RUNNING:
            if process.poll() is not None:
                fail(f"{name} exited with {process.returncode} while waiting for {what}:\n{tail(log)}")
        time.sleep(interval)
    fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- docker-compose.yml and the Dockerfile -----------------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(text: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, nested defaults."""

    def one(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = variables.get(name)
        unset = value is None or (value == "" and operator in (":-", ":?"))
        if operator in (":-", "-") and unset:
            return substitute(argument, variables)
        if operator in (":?", "?") and unset:
            fail(f"docker-compose.yml needs {name}: {argument}")
        return value or ""

    return _VARIABLE.sub(one, text)


def load_compose() -> dict:
    try:
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    except yaml.YAMLError as exc:
        fail(f"docker-compose.yml is not valid YAML: {exc}")
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        fail("docker-compose.yml has no services")
    return compose


def app_services(compose: dict) -> dict[str, dict]:
    """The services built from this repository (the others are images: postgres, redis)."""
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def service_env(spec: dict, variables: dict[str, str]) -> dict[str, str]:
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: substitute(str(value), variables) for key, value in environment.items()}


def dockerfile_install_commands() -> list[list[str]]:
    """The Dockerfile's RUN steps that install or prepare the app (pip install, collectstatic)."""
    runs = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("RUN ") and ("pip install" in line or "manage.py" in line):
            runs.append(shlex.split(line[4:]))
    if not any("pip" in run for run in runs):
        fail("the Dockerfile has no pip install step")
    return runs


# --- the virtualenv of requirements.txt alone --------------------------------------------------


def build_venv(work: Path) -> Path:
    venv = work / "venv"
    python = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    say(f"building a fresh virtualenv from requirements.txt alone ({python} -m venv {venv})")
    run_checked([python, "-m", "venv", str(venv)], "python -m venv", timeout=120)
    bin_dir = venv / "bin"
    for step in dockerfile_install_commands():
        if "pip" in step:
            command = [str(bin_dir / "pip"), *step[step.index("pip") + 1:]]
            say("Dockerfile step: " + shlex.join(command))
            run_checked(command, "pip install -r requirements.txt", timeout=600)
    return bin_dir


def run_checked(command, what, *, env=None, timeout=120, cwd=ROOT) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        fail(f"{what} did not finish within {timeout}s")
    if result.returncode != 0:
        fail(f"{what} exited with {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def program(bin_dir: Path, command: list[str]) -> list[str]:
    """A compose command with its program taken from the virtualenv (python, gunicorn, celery)."""
    path = bin_dir / command[0]
    if not path.exists():
        fail(f"{command[0]!r} (from docker-compose.yml) is not installed by requirements.txt")
    return [str(path), *command[1:]]


# --- processes ---------------------------------------------------------------------------------


def start(name: str, command: list[str], env: dict, logs: Path) -> subprocess.Popen:
    log = logs / f"{name}.log"
    say(f"starting {name}: {shlex.join(command)}")
    handle = open(log, "w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    RUNNING.append((name, process, log))
    return process


def stop_all() -> None:
    for _name, process, _ in reversed(RUNNING):
        if process.poll() is None:
            process.terminate()  # the main process only: gunicorn and celery stop their own children
    for name, process, _ in reversed(RUNNING):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop on SIGTERM within 15s: killing it")
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    RUNNING.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- HTTP --------------------------------------------------------------------------------------


def http(method: str, url: str, *, token: str | None = None, json_body=None, form=None, headers=None,
         expect=(200,)) -> tuple[int, object]:
    data, sent = None, dict(headers or {})
    if json_body is not None:
        data, sent["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif form is not None:
        data, sent["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    if token:
        sent["Authorization"] = f"Token {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    if expect and status not in expect:
        fail(f"{method} {urllib.parse.urlsplit(url).path} answered {status} (expected {expect}): {str(body)[:1000]}")
    return status, body


def twilio_signature(url: str, form: dict) -> str:
    signed = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()).decode()


class Flow:
    """The black-box walk through the service, over HTTP only."""

    def __init__(self, base: str, public_base: str, stand_in: str, token: str, label: str):
        self.base, self.public_base, self.stand_in, self.token, self.label = base, public_base, stand_in, token, label
        self.slug = f"ci-{label}"

    def api(self, method, path, **kwargs):
        return http(method, self.base + "/api/v1/" + path, token=self.token, **kwargs)[1]

    def provider_messages(self, to: str) -> list[dict]:
        query = urllib.parse.urlencode({"to": to, "api": "twilio"})
        return http("GET", f"{self.stand_in}/__stand_in/messages?{query}")[1]["messages"]

    def inbound(self, phone: str, text: str) -> None:
        path = "/webhooks/twilio/inbound/"
        form = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": TWILIO_SID, "From": phone, "To": TWILIO_FROM,
                "Body": text, "NumMedia": "0"}
        signature = twilio_signature(self.public_base + path, form)
        status, body = http("POST", self.base + path, form=form, headers={"X-Twilio-Signature": signature})
        if "<Response" not in str(body):
            fail(f"Twilio inbound webhook did not answer TwiML: {body!r}")
        say(f"signed Twilio inbound {text!r} from {phone}: 200")

    def consent_status(self, phone: str) -> str | None:
        contact = self.api("GET", f"contacts/{urllib.parse.quote(phone)}/", expect=(200, 404))
        for consent in (contact or {}).get("consents", []) if isinstance(contact, dict) else []:
            if consent["topic"] == self.slug and consent["channel"] == "sms":
                return consent["status"]
        return None

    def opt_in(self, phone: str) -> None:
        answer = self.api("POST", "optins/", expect=(201,), json_body={
            "phone": phone, "topic": self.slug, "channel": "sms",
            "evidence": {"ip": "203.0.113.5", "user_agent": "ci-production-stage", "page_url": "https://acme.example/join"}})
        if answer.get("status") != "pending":
            fail(f"opt-in of {phone} is not pending: {answer}")
        prompt = wait_for(f"the confirmation prompt to {phone} at the provider stand-in",
                          lambda: [m for m in self.provider_messages(phone) if "YES" in m["body"]], 60)
        if len(prompt) != 1 or f"{self.public_base}/optin/confirm/" not in prompt[0]["body"]:
            fail(f"expected one prompt with a confirmation link to {phone}, got {prompt}")
        say(f"prompt to {phone} arrived at the stand-in: {prompt[0]['body'][:60]!r}…")
        self.inbound(phone, "YES")
        wait_for(f"{phone}'s consent to become active", lambda: self.consent_status(phone) == "active", 30)
        say(f"{phone}: consent active")

    def broadcast(self, name: str, reaches: tuple[str, ...], spared: tuple[str, ...]) -> None:
        body = f"Acme {name} {secrets.token_hex(4)}: 20% off today."
        created = self.api("POST", "broadcasts/", expect=(201,), json_body={
            "name": name, "topic": self.slug, "channel": "sms", "body": body, "respect_quiet_hours": False})
        self.api("POST", f"broadcasts/{created['id']}/schedule/", expect=(200, 202))
        say(f"broadcast {created['id']} ({name}) scheduled")
        done = wait_for(f"broadcast {created['id']} to complete",
                        lambda: (lambda b: b if b["status"] == "completed" else None)(
                            self.api("GET", f"broadcasts/{created['id']}/")), 120, interval=1)
        for phone in reaches + spared:
            got = [m for m in self.provider_messages(phone) if body in m["body"]]
            wanted = 1 if phone in reaches else 0
            if len(got) != wanted:
                fail(f"broadcast {name}: {len(got)} messages to {phone} at the stand-in, expected {wanted}; "
                     f"the broadcast as the API shows it: {done}")
        say(f"broadcast {created['id']} completed, stats {done['stats']}: once to {', '.join(reaches)}"
            + (f", nothing to {', '.join(spared)}" if spared else ""))

    def run(self) -> None:
        self.api("POST", "topics/", expect=(201,), json_body={
            "slug": self.slug, "name": "Acme flash sales", "keywords": [f"FLASH{self.label.upper()}"],
            "consent_text": "Yes, text me Acme flash sales (max 4/month). Msg & data rates may apply.",
            "confirmation_message": "Acme: reply YES to confirm flash-sale texts, STOP to cancel.",
            "help_message": "Acme flash sales. Help: help@acme.example. Reply STOP to opt out.",
            "consent_ttl_days": 365})
        say(f"topic {self.slug} created")
        for phone in PHONES:
            self.opt_in(phone)
        self.broadcast("first", reaches=PHONES, spared=())
        before = len(self.provider_messages(PHONES[0]))
        self.inbound(PHONES[0], "STOP")
        wait_for(f"{PHONES[0]}'s consent to be revoked", lambda: self.consent_status(PHONES[0]) == "revoked", 30)
        wait_for(f"the STOP confirmation to {PHONES[0]}", lambda: len(self.provider_messages(PHONES[0])) > before, 60)
        say(f"{PHONES[0]}: revoked, STOP confirmation sent")
        self.broadcast("second", reaches=PHONES[1:], spared=PHONES[:1])
        verified = self.api("GET", "audit/verify/")
        if not verified.get("ok"):
            fail(f"GET audit/verify/ is not ok: {verified}")
        say(f"GET audit/verify/: ok, {verified.get('events')} events")


# --- one store ---------------------------------------------------------------------------------


def ed25519_pem() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def deployment_variables(port: int, stand_in: str) -> dict[str, str]:
    """What an operator puts in the environment (or .env) of docker compose."""
    private, public = ed25519_pem()
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "CONSENT_PSEUDONYM_KEY": secrets.token_urlsafe(48),
        "AUDIT_SIGNING_KEY": private,
        "AUDIT_PUBLIC_KEY": public,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "POSTGRES_PASSWORD": "consent",
        "SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "TWILIO_API_BASE": stand_in,
        "WHATSAPP_PROVIDER": "cloud",
        "WHATSAPP_ACCESS_TOKEN": "EAA" + secrets.token_hex(16),
        "WHATSAPP_PHONE_NUMBER_ID": "1055501000",
        "WHATSAPP_APP_SECRET": secrets.token_hex(16),
        "WHATSAPP_VERIFY_TOKEN": secrets.token_hex(8),
        "WHATSAPP_API_BASE": stand_in + "/v23.0",
    }


def to_loopback(env: dict, args, store: str, data_dir: Path) -> dict:
    """Point the compose environment at this machine: loopback PostgreSQL and Redis, or the embedded default."""
    env = dict(env)
    if store == "embedded":
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
            env.pop(name, None)
    else:
        database = urllib.parse.urlsplit(env["DATABASE_URL"])
        env["DATABASE_URL"] = urllib.parse.urlunsplit(database._replace(
            netloc=f"{database.username}:{database.password or ''}@127.0.0.1:5432", path=f"/{args.database}"))
        env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:6379/{args.redis_db}"
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{args.redis_db + 1}"
    env["DATA_DIR"] = str(data_dir)
    if "AUDIT_CHECKPOINT_SINK" in env:  # compose's shared volume: one folder here for the signer and the readers
        env["AUDIT_CHECKPOINT_SINK"] = str(data_dir / "checkpoints")
    return env


def process_env(service_vars: dict) -> dict:
    """The service's environment on top of a minimal base (no variable of this shell leaks in)."""
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    return {**base, "PYTHONUNBUFFERED": "1", **service_vars}


def reset_postgres(bin_dir: Path, args, compose: dict) -> None:
    """A fresh database owned by compose's POSTGRES_USER, a superuser as in the postgres image."""
    owner = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    code = ("import psycopg, sys; c = psycopg.connect('postgres://postgres@127.0.0.1:5432/postgres', autocommit=True,"
            " connect_timeout=10); n, o = sys.argv[1:3];"
            " c.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', [o]).fetchone()"
            " or c.execute(f'CREATE ROLE \"{o}\" LOGIN SUPERUSER');"
            " c.execute(f'DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)'); c.execute(f'CREATE DATABASE \"{n}\" OWNER \"{o}\"')")
    run_checked([str(bin_dir / "python"), "-c", code, args.database, owner], "creating the stage's database")
    code = ("import redis, sys; [redis.Redis.from_url(f'redis://127.0.0.1:6379/{n}', socket_timeout=5).flushdb()"
            " for n in (int(sys.argv[1]), int(sys.argv[1]) + 1)]")
    run_checked([str(bin_dir / "python"), "-c", code, str(args.redis_db)], "emptying the stage's Redis databases")
    say(f"PostgreSQL database {args.database} created, owned by {owner}; Redis databases {args.redis_db}, {args.redis_db + 1} emptied")


def app_role_ready(bin_dir: Path, env: dict) -> bool:
    """Whether migrate created the application role `consent_app` with rights on this database's ledger."""
    code = ("import os, psycopg; c = psycopg.connect(os.environ['DATABASE_URL'], connect_timeout=10);"
            "r = c.execute(\"SELECT 1 FROM pg_roles WHERE rolname = 'consent_app' AND rolcanlogin\").fetchone()"
            " and c.execute(\"SELECT has_table_privilege('consent_app', 'consent_consentevent', 'INSERT')\").fetchone()[0];"
            "print('yes' if r else 'no')")
    return run_checked([str(bin_dir / "python"), "-c", code], "looking for the consent_app role",
                       env=process_env(env)).strip().endswith("yes")


def signer_supported(bin_dir: Path, env: dict) -> bool:
    """Whether the settings route ledger checkpoints to the `audit-signer` queue (a separate signer process)."""
    code = ("import django; django.setup(); from django.conf import settings;"
            "routes = str(getattr(settings, 'CELERY_TASK_ROUTES', '') or '');"
            "print('yes' if 'audit-signer' in routes and hasattr(settings, 'AUDIT_PUBLIC_KEY') else 'no')")
    return run_checked([str(bin_dir / "python"), "-c", code], "reading the settings' task routes",
                       env=process_env(env)).strip().endswith("yes")


IMPORT_SWEEP = """
import importlib, pathlib, django
django.setup()
from django.core.management import get_commands, load_command_class
failed = []
for package in ("config", "messaging", "consent", "broadcasts"):
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        name = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
        if name.startswith("config.settings.") and name != "config.settings.production":
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {exc!r}")
commands = get_commands()
for command, app in commands.items():
    try:
        load_command_class(app, command)
    except Exception as exc:
        failed.append(f"manage.py {command}: {exc!r}")
print("\\n".join(failed) or f"imported every module and {len(commands)} management commands")
raise SystemExit(1 if failed else 0)
"""


def import_sweep(bin_dir: Path, env: dict) -> None:
    """Every module of the project and every management command imports from requirements.txt alone."""
    out = run_checked([str(bin_dir / "python"), "-c", IMPORT_SWEEP], "importing every module from requirements.txt alone",
                      env=env, timeout=120)
    say(out.strip().splitlines()[-1])


def run_store(store: str, args, bin_dir: Path, compose: dict, work: Path, stand_in: str, ran: set) -> None:
    say(f"=== {store}: {'PostgreSQL + Redis on loopback' if store == 'postgres' else 'SQLite + file-system broker'}")
    services = app_services(compose)
    port = free_port()
    variables = deployment_variables(port, stand_in)
    data_dir = work / f"data-{store}"
    data_dir.mkdir()
    logs = work / f"logs-{store}"
    logs.mkdir()
    if store == "postgres":
        reset_postgres(bin_dir, args, compose)

    def env_of(name: str) -> dict:
        return process_env(to_loopback(service_env(services[name], variables), args, store, data_dir))

    migrate = services["migrate"]["command"]
    say("migrate: " + shlex.join(migrate))
    out = run_checked(program(bin_dir, migrate), "migrate", env=env_of("migrate"), timeout=300)
    say(f"migrate: done ({len(out.splitlines())} lines of output)")
    ran.add("migrate")

    if store == "postgres":
        if not app_role_ready(bin_dir, env_of("migrate")):
            fail("migrate did not create the consent_app role that web, worker and beat connect as")
        say("web, worker and beat connect as consent_app, the role migrate created")
    if "signer" not in services or not signer_supported(bin_dir, env_of("web")):
        fail("compose has no signer service, or the settings do not route checkpoints to the audit-signer queue")
    holders = sorted(name for name in services if "AUDIT_SIGNING_KEY" in env_of(name) and name != "signer")
    if holders or "AUDIT_SIGNING_KEY" not in env_of("signer"):
        fail(f"only the signer may hold AUDIT_SIGNING_KEY (also given to: {', '.join(holders) or 'none'})")
    say("only the signer holds AUDIT_SIGNING_KEY; web, worker and beat verify with AUDIT_PUBLIC_KEY")
    app_env = env_of

    import_sweep(bin_dir, env_of("web"))
    manage = [str(bin_dir / "python"), "manage.py"]
    token = run_checked([*manage, "create_api_user", f"ci-{store}", "--role", "admin"], "create_api_user",
                        env=app_env("web")).strip().splitlines()[-1]
    say(f"create_api_user: token of {len(token)} characters on the last line")

    beat_schedule = work / f"celerybeat-schedule-{store}"
    for name in ("web", "worker", "beat", "signer"):
        command = list(services[name]["command"])
        if name == "web":  # compose publishes 0.0.0.0:8000; here a free loopback port
            command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
        if "--schedule" in command:
            command[command.index("--schedule") + 1] = str(beat_schedule)
        start(name, program(bin_dir, command), app_env(name), logs)
        ran.add(name)
    base = f"http://127.0.0.1:{port}"
    ready = wait_for("/readyz/", lambda: http("GET", base + "/readyz/", expect=())[0] == 200, 90)
    say(f"/readyz/: 200 ({ready})")

    health = services["web"].get("healthcheck", {}).get("test", [])
    if health[:1] == ["CMD"]:
        command = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in health[1:]]
        run_checked(program(bin_dir, command), "the web service's healthcheck", env=app_env("web"), timeout=30)
        say("web healthcheck (compose's command): ok")
    worker_health = services["worker"].get("healthcheck", {}).get("test", [])
    if worker_health[:1] == ["CMD-SHELL"]:
        shell = substitute(worker_health[1], {})  # $$HOSTNAME -> $HOSTNAME, for the shell
        env = {**app_env("worker"), "HOSTNAME": socket.gethostname(), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
        wait_for("the worker's healthcheck (celery -A config inspect ping)",
                 lambda: subprocess.run(["sh", "-c", shell], cwd=ROOT, env=env, capture_output=True,
                                        timeout=30).returncode == 0, 60, interval=2)
        say(f"worker healthcheck (compose's command): {shell}: ok")

    Flow(base, variables["PUBLIC_BASE_URL"], stand_in, token, store).run()

    # A checkpoint asked for by a process without the key is signed by the signer, through its queue,
    # and lands in the write-once sink that verification then holds the ledger to.
    run_checked([str(bin_dir / "celery"), "-A", "config", "call", "consent.audit.tasks.ledger_checkpoint_task"],
                "queueing a checkpoint from the web's environment", env=app_env("web"), timeout=60)
    sink = Path(env_of("signer")["AUDIT_CHECKPOINT_SINK"])
    written = wait_for("the signer's checkpoint in the sink", lambda: sorted(sink.glob("*.json")) if sink.is_dir() else [], 90)
    say(f"signer: checkpoint {written[-1].name} in the sink")
    verified = http("GET", base + "/api/v1/audit/verify/", token=token)[1]
    if not (verified.get("ok") and verified.get("external_checkpoint")):
        fail(f"GET audit/verify/ does not hold the ledger to the sink's checkpoint: {verified}")
    say(f"GET audit/verify/: ok against the sink's checkpoint {verified['external_checkpoint']}")

    export = work / f"consent-{store}.jsonl"
    # Exports are signed: they run where the key is (docker compose run --rm signer python manage.py …).
    run_checked([*manage, "export_consent_log", "--format", "jsonl", "--output", str(export)], "export_consent_log",
                env=app_env("signer"))
    manifest = Path(f"{export}.manifest.json")
    if not manifest.exists():
        fail(f"export_consent_log wrote no manifest next to {export.name}")
    count = json.loads(manifest.read_text()).get("count")
    say(f"export_consent_log: exit 0, {count} events, manifest {manifest.name}")
    summary = run_checked([*manage, "verify_consent_log"], "verify_consent_log", env=app_env("web"))
    say(f"verify_consent_log: exit 0: {summary.strip().splitlines()[-1] if summary.strip() else ''}")
    stop_all()
    say(f"=== {store}: passed")


# --- the compose file itself --------------------------------------------------------------------


def check_compose(compose: dict, ran: set) -> None:
    services = app_services(compose)
    for name, spec in services.items():
        if not spec.get("command"):
            fail(f"compose service {name} has no command")
        if name not in ran:
            if spec.get("profiles") and spec["command"][:3] == ["celery", "-A", "config"]:
                say(f"compose service {name} (profile {spec['profiles']}) not run: its program `celery -A config` "
                    "is the worker's, which ran")
            else:
                fail(f"compose service {name} ({shlex.join(spec['command'])}) was not run by this stage")
    readme = (ROOT / "README.md").read_text()
    documented = set()
    for line in readme.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    passed = set()
    referenced = set()
    for spec in services.values():
        passed |= set((spec.get("environment") or {}).keys())
        referenced |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", json.dumps(spec.get("environment") or {})))
    missing = sorted(passed - documented)
    if missing:
        fail(f"docker-compose.yml passes variables the README's settings table does not document: {missing}")
    undocumented = sorted(name for name in referenced - documented if f"`{name}`" not in readme)
    if undocumented:
        fail(f"docker-compose.yml reads variables the README does not mention: {undocumented}")
    say(f"docker-compose.yml: valid YAML, services {sorted(compose['services'])}, commands run: {sorted(ran)}, "
        f"{len(passed)} variables passed, each in the README's settings table")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("postgres", "embedded", "both"), default="both")
    parser.add_argument("--database", default="ci_production", help="PostgreSQL database of this stage (recreated)")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis database of the broker; the cache takes the next")
    parser.add_argument("--venv", type=Path, help="reuse this requirements-only virtualenv instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, exports)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole stage")
    args = parser.parse_args()
    def out_of_time(*_):
        raise StageFailure(f"the stage took over {args.timeout:.0f}s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.timeout))
    work = Path(tempfile.mkdtemp(prefix="consent-production-"))
    compose = load_compose()
    stand_in_process = None
    ran: set[str] = set()
    try:
        bin_dir = args.venv / "bin" if args.venv else build_venv(work)
        for step in dockerfile_install_commands():
            if "manage.py" in step:
                env_prefix = dict(item.split("=", 1) for item in step if "=" in item and item.split("=")[0].isupper())
                command = program(bin_dir, step[len(env_prefix):])
                say("Dockerfile step: " + shlex.join(step))
                run_checked(command, "the Dockerfile's " + shlex.join(step),
                            env=process_env({**env_prefix, "DATA_DIR": str(work / "data-build")}), timeout=180)
        stand_in_process = subprocess.Popen([str(bin_dir / "python"), "-m", "tests.stand_in", "--port", "0"], cwd=ROOT,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        stand_in = stand_in_process.stdout.readline().strip()
        if not stand_in.startswith("http://127.0.0.1:"):
            fail(f"the provider stand-in did not print its URL: {stand_in!r}")
        say(f"provider stand-in (Twilio, WhatsApp Cloud) at {stand_in}")
        for store in (("postgres", "embedded") if args.store == "both" else (args.store,)):
            http("POST", f"{stand_in}/__stand_in/reset")
            run_store(store, args, bin_dir, compose, work, stand_in, ran)
        check_compose(compose, ran)
    except Exception as failure:
        if not isinstance(failure, StageFailure):
            traceback.print_exc()
        print(f"\nPRODUCTION STAGE FAILED: {failure}", file=sys.stderr, flush=True)
        for name, process, log in RUNNING:
            print(f"\n--- {name} (pid {process.pid}, exit {process.poll()}) last lines of {log}:\n{tail(log)}",
                  file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        stop_all()
        if stand_in_process is not None:
            os.killpg(stand_in_process.pid, signal.SIGTERM)
            stand_in_process.wait(timeout=10)
        if args.keep:
            say(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    say("production stage passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
