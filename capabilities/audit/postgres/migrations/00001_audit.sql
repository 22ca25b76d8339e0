-- The audit domain: one row per capability call, chained by hash.
--
--   audit.head      one row: the lock every append takes, and the last
--                   sequence appended
--   audit.records   the chain: sequence 1, 2, 3... each row's prev_hash
--                   the hash of the row before
--
-- Appends are serialized by SELECT ... FOR UPDATE of the head row, so the
-- sequence has no gap and each record links to the one before it.
--
-- The records are append-only: a trigger refuses UPDATE, DELETE and
-- TRUNCATE. The trigger stops mistakes, not an intruder who owns the table
-- (ALTER TABLE ... DISABLE TRIGGER); that is what the hash chain and
-- VerifyAuditChain are for. In production, the role the gateway connects as
-- should also hold only SELECT and INSERT on audit.records (REVOKE UPDATE,
-- DELETE, TRUNCATE), and the schema be owned by another role.
--
-- Ids, principals and capabilities compare with COLLATE "C", byte by byte
-- as Go compares strings, whatever the database's locale.

-- +goose Up
CREATE TABLE audit.head (
    only_row      boolean NOT NULL DEFAULT true,
    -- The sequence of the last record appended; 0 before the first.
    last_sequence bigint NOT NULL,

    CONSTRAINT head_pkey PRIMARY KEY (only_row),
    CONSTRAINT head_one_row CHECK (only_row),
    CONSTRAINT head_last_sequence_not_negative CHECK (last_sequence >= 0)
);

INSERT INTO audit.head (last_sequence) VALUES (0);

CREATE TABLE audit.records (
    -- "aud_" and a ULID.
    id           text COLLATE "C" NOT NULL,
    sequence     bigint NOT NULL,
    time         timestamptz NOT NULL,
    -- Empty for a call that did not authenticate.
    principal_id text COLLATE "C" NOT NULL,
    -- The rpc's full name.
    capability   text COLLATE "C" NOT NULL,
    -- "ok" or a Connect code name.
    code         text COLLATE "C" NOT NULL,
    resource_ids text[] COLLATE "C" NOT NULL,
    revealed     text[] COLLATE "C" NOT NULL,
    request_id   text COLLATE "C" NOT NULL,
    -- The hash of the record before; 32 zero bytes for the first.
    prev_hash    bytea NOT NULL,
    -- SHA-256 of the record (see capabilities/audit.ComputeHash).
    hash         bytea NOT NULL,

    CONSTRAINT records_pkey PRIMARY KEY (id),
    CONSTRAINT records_id_format CHECK (id ~ '^aud_[0-9A-Z]{26}$'),
    CONSTRAINT records_sequence_key UNIQUE (sequence),
    CONSTRAINT records_sequence_positive CHECK (sequence > 0),
    CONSTRAINT records_capability_not_empty CHECK (capability <> ''),
    CONSTRAINT records_code_not_empty CHECK (code <> ''),
    CONSTRAINT records_prev_hash_length CHECK (octet_length(prev_hash) = 32),
    CONSTRAINT records_hash_length CHECK (octet_length(hash) = 32)
);

-- ListAuditRecords filtered by principal or by capability.
CREATE INDEX records_principal_id_sequence ON audit.records (principal_id, sequence);
CREATE INDEX records_capability_sequence ON audit.records (capability, sequence);

-- +goose StatementBegin
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.records is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON audit.records
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON audit.records
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- +goose Down
DROP TABLE audit.records;
DROP FUNCTION audit.refuse_change();
DROP TABLE audit.head;
