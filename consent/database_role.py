"""The PostgreSQL role the application runs as: it reads and writes its tables but can only append to
the ledger, so history cannot be rewritten, truncated or have its triggers dropped from the application.

`migrate`, run as the database owner, creates the role and grants (a migration, then again after every
migrate, for tables that later migrations add). Elsewhere (SQLite) there are no roles: nothing to do.
"""

import os
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from psycopg import sql

# Tables the application may only read and append to; the chain head it moves but never deletes.
APPEND_ONLY_TABLES = ("consent_consentevent", "consent_ledgercheckpoint", "consent_topictext", "consent_staffaction")
CHAIN_HEAD_TABLE = "consent_chainhead"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def app_role_grant(connection) -> bool:
    """Create the application role if missing and grant it what the application needs (idempotent).

    False where there is nothing to do: not PostgreSQL, or migrate already runs as that role.
    """
    if connection.vendor != "postgresql":
        return False
    role = settings.DATABASE_APP_ROLE
    if not _ROLE_NAME.match(role or ""):
        raise ImproperlyConfigured(f"DATABASE_APP_ROLE {role!r} must be a lower-case SQL identifier.")
    name = connection.ops.quote_name(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_schema()")
        user, schema = cursor.fetchone()
        if user == role:
            return False
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
        found = cursor.fetchone()
        if found is None:
            _role_create(connection, cursor, name)
        elif found[0]:
            raise ImproperlyConfigured(f"The application role {role} is a superuser: it could rewrite the ledger.")
        cursor.execute("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                       "AND relowner = (SELECT oid FROM pg_roles WHERE rolname = %s) ORDER BY relname LIMIT 1", [role])
        owned = cursor.fetchone()
        if owned:
            # An owner may alter its table, drop its triggers and grant itself back what is revoked.
            raise ImproperlyConfigured(f"The application role {role} owns {owned[0]}: give the tables to the database "
                                       f"owner (ALTER TABLE … OWNER TO {user}) and run migrate as that owner.")
        schema = connection.ops.quote_name(schema)
        statements = [
            f"GRANT USAGE ON SCHEMA {schema} TO {name}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {name}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {name}",
            # Tables and sequences this owner creates later (migrations, the cache table) get the same.
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {name}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {name}",
        ]
        cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace "
                       "AND relname = ANY(%s)", [[*APPEND_ONLY_TABLES, CHAIN_HEAD_TABLE]])
        existing = {row[0] for row in cursor.fetchall()}
        for table in sorted(existing & set(APPEND_ONLY_TABLES)):
            statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {table} FROM {name}")
        if CHAIN_HEAD_TABLE in existing:
            statements.append(f"REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON {CHAIN_HEAD_TABLE} FROM {name}")
        for statement in statements:
            cursor.execute(statement)
    return True


def _role_create(connection, cursor, name: str) -> None:
    password = os.environ.get("DATABASE_APP_PASSWORD", "")
    statement = f"CREATE ROLE {name} LOGIN"
    if password:
        # DDL takes no bound parameters: the password is quoted as a literal by the driver.
        statement += " PASSWORD " + sql.Literal(password).as_string(connection.connection)
    try:
        cursor.execute(statement)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"migrate could not create the application role {name} ({exc}). Run migrate as a user with CREATEROLE, "
            f"or create the role first (CREATE ROLE {name} LOGIN PASSWORD '…')."
        ) from exc
