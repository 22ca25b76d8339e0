-- The records of idempotency keys: one row per (caller, key) whose call
-- finished with a final answer. A row is written in the same transaction as
-- the call's effect, so the two commit together or not at all.

-- +goose Up
CREATE TABLE idempotency.records (
    caller       text NOT NULL,
    key          text NOT NULL,
    procedure    text NOT NULL,
    -- sha256 of the procedure and the request, to refuse a key reused for
    -- another request.
    request_hash bytea NOT NULL,
    -- 0 for a success, else the Connect code of the refusal.
    code         integer NOT NULL,
    -- The response message (protobuf binary) of a success.
    response     bytea,
    -- The refusal's message and details (google.protobuf.Any, binary).
    message      text NOT NULL DEFAULT '',
    details      bytea[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,

    CONSTRAINT records_pkey PRIMARY KEY (caller, key),
    CONSTRAINT records_key_length CHECK (length(key) BETWEEN 1 AND 255),
    CONSTRAINT records_hash_length CHECK (length(request_hash) = 32),
    CONSTRAINT records_code_known CHECK (code BETWEEN 0 AND 16),
    -- A success has a response; a refusal has none.
    CONSTRAINT records_response_iff_success CHECK ((code = 0) = (response IS NOT NULL))
);

-- The janitor deletes by age.
CREATE INDEX records_created_at ON idempotency.records (created_at);

-- +goose Down
DROP TABLE idempotency.records;
