"""Seed a demo topic and an admin API user for `make run`, and say where to go next."""

import io

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from consent import services
from consent.models import Topic


class Command(BaseCommand):
    help = "Create the demo topic 'promo' and an 'admin' API user (idempotent); print the token and the URLs."

    def handle(self, *args, **options):
        if not Topic.objects.filter(slug="promo").exists():
            services.topic_create(
                slug="promo",
                name="Acme promotions",
                keywords=["PROMO"],
                consent_text=(
                    "Yes, send me Acme promotional messages (about 4 a month) to this number. "
                    "Msg & data rates may apply. Reply STOP to opt out, HELP for help."
                ),
                confirmation_message="Acme: reply YES to confirm you want promotional messages, STOP to cancel.",
                help_message="Acme promotions: help@acme.example. Reply STOP to opt out.",
                consent_ttl_days=730,
                actor="system",
            )
        out = io.StringIO()
        call_command("create_api_user", "admin", role="admin", stdout=out, stderr=io.StringIO())
        token = out.getvalue().strip().splitlines()[-1]
        base = settings.PUBLIC_BASE_URL
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Consent manager is set up (demo topic 'promo', API user 'admin').",
                    f"  API docs:          {base}/api/docs/",
                    f"  Hosted opt-in:     {base}/optin/promo/",
                    f"  Django admin:      {base}/admin/  (python manage.py createsuperuser for a password login)",
                    f"  Health:            {base}/healthz/  {base}/readyz/",
                    "  Outgoing messages are printed by the worker (console provider).",
                    f"  Admin API token:   {token}",
                    "  Try:  curl -H 'Authorization: Token <token>' " + f"{base}/api/v1/topics/",
                    "",
                ]
            )
        )
