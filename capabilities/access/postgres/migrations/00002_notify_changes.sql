-- Tell every gateway when what authenticates a call changes.
--
-- Each gateway keeps the keys it has looked up in memory (see the package
-- doc of capabilities/access/postgres), so that a call costs no statement
-- to authenticate. These triggers make every change of a key, a principal
-- or its roles NOTIFY the channel plinth_access_changed, whoever makes it:
-- a gateway, `plinth` or an UPDATE typed by hand. Every gateway LISTENs on
-- it and empties its cache on each notification, so that a revoked key
-- stops working everywhere as soon as the revocation commits.
--
-- The payload is empty: a notification says "something changed", not
-- what, and PostgreSQL folds identical notifications of one transaction
-- into one, so a statement that changes many rows costs one. Notifications
-- are sent at commit and never for a transaction rolled back.
--
-- Statement triggers, but for the UPDATE of api_keys: Authenticate sets a
-- key's last_used_at once a minute per key in use, and that changes nothing
-- a cache holds for long (the gateway that writes it updates its own copy),
-- so a row trigger fires only WHEN something else in the row changed. It
-- compares the whole row but last_used_at, so a column added later is
-- covered without touching this trigger.
--
-- TRUNCATE bypasses row triggers and DELETE triggers: it has its own.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION access.notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('plinth_access_changed', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER principals_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON access.principals
    FOR EACH STATEMENT EXECUTE FUNCTION access.notify_changed();
CREATE TRIGGER principal_roles_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON access.principal_roles
    FOR EACH STATEMENT EXECUTE FUNCTION access.notify_changed();
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE OR TRUNCATE ON access.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION access.notify_changed();
CREATE TRIGGER api_keys_notify_update AFTER UPDATE ON access.api_keys
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at'))
    EXECUTE FUNCTION access.notify_changed();

-- +goose Down
DROP TRIGGER api_keys_notify_update ON access.api_keys;
DROP TRIGGER api_keys_notify ON access.api_keys;
DROP TRIGGER principal_roles_notify ON access.principal_roles;
DROP TRIGGER principals_notify ON access.principals;
DROP FUNCTION access.notify_changed();
