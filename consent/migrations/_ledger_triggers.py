"""SQL for the triggers that make ledger tables append-only (used by a migration and by flush)."""

PROTECTED = [("consent_consentevent", "consent events are append-only"),
             ("consent_topictext", "topic text versions are immutable")]
# Added by a later migration (the staff action log); flush lifts and restores them with the others.
STAFF_ACTIONS = [("consent_staffaction", "staff actions are append-only")]
ALL = PROTECTED + STAFF_ACTIONS


def install(schema_editor, tables=PROTECTED):
    vendor = schema_editor.connection.vendor
    for table, message in tables:
        if vendor == "postgresql":
            schema_editor.execute(
                f"""
                CREATE OR REPLACE FUNCTION {table}_refuse_change() RETURNS trigger AS $$
                BEGIN
                    RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege';
                END;
                $$ LANGUAGE plpgsql;
                """
            )
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse_change();"
            )
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse_change();"
            )
        elif vendor == "sqlite":
            for action in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END;"
                )
        else:
            raise RuntimeError(f"No append-only triggers for database vendor {vendor!r}.")


def uninstall(schema_editor, tables=PROTECTED):
    vendor = schema_editor.connection.vendor
    for table, _ in tables:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table};")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_refuse_change();")
        elif vendor == "sqlite":
            for action in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action};")
