-- Records added and not yet chained.
--
-- Recording a call used to lock audit.head and commit on its own: every
-- call of the platform queued on one row and committed twice. Now a call's
-- record is one INSERT here, in the call's own transaction when it has
-- one, and a chainer (capabilities/audit.Service.Chain, run in the
-- background and before every read of the chain) moves the waiting rows
-- into audit.records in batches, under the head's lock, giving them their
-- sequence and hashes.
--
-- Rows wait here for about a second, and are not tamper-evident while they
-- wait: the chainer must delete them, so this table cannot refuse DELETE
-- as audit.records refuses it. A production role needs INSERT, SELECT and
-- DELETE here.

-- +goose Up
CREATE TABLE audit.pending (
    id           text COLLATE "C" NOT NULL,
    time         timestamptz NOT NULL,
    principal_id text COLLATE "C" NOT NULL,
    capability   text COLLATE "C" NOT NULL,
    code         text COLLATE "C" NOT NULL,
    resource_ids text[] COLLATE "C" NOT NULL,
    revealed     text[] COLLATE "C" NOT NULL,
    request_id   text COLLATE "C" NOT NULL,

    CONSTRAINT pending_pkey PRIMARY KEY (id),
    CONSTRAINT pending_id_format CHECK (id ~ '^aud_[0-9A-Z]{26}$'),
    CONSTRAINT pending_capability_not_empty CHECK (capability <> ''),
    CONSTRAINT pending_code_not_empty CHECK (code <> '')
);

-- The chainer takes the oldest first.
CREATE INDEX pending_time_id ON audit.pending (time, id);

-- +goose Down
DROP TABLE audit.pending;
