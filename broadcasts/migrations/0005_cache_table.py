"""The database cache table (the throttle's shared store when no Redis is configured).

`migrate` alone is a complete install: without this, every send on the embedded default or on
PostgreSQL without REDIS_URL failed with "no such table: consent_cache".
"""

from django.conf import settings
from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

TABLE = "consent_cache"


def table_name() -> str:
    for cache in settings.CACHES.values():
        if cache["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
            return cache["LOCATION"]
    return TABLE


def create(apps, schema_editor):
    # The table is created whichever cache is configured now, so switching REDIS_URL off later still works.
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, table_name(), dry_run=False)


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(table_name())}")


class Migration(migrations.Migration):
    dependencies = [("broadcasts", "0004_delivery_without_db_foreign_keys")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
