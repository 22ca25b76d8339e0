-- The customers domain: one row per customer in customers.customers, what
-- is not sensitive, and its PII in customers.customer_pii.
--
-- The PII lives in a table of its own so that it can be guarded apart
-- (grants, erasure of a customer's PII while the record that the customer
-- existed stays) and so that sealing it at rest (issue 4) changes what its
-- columns hold and nothing else. Each PII column is bytea and holds what the
-- backend's fieldCodec made of the value: a format byte, then the value
-- (0x00, today: not sealed) or, after issue 4, its AES-256-GCM sealing bound
-- to the table, column and row.

-- +goose Up
CREATE TABLE customers.customers (
    -- "cus_" and a ULID. COLLATE "C" compares ids byte by byte, as Go
    -- compares strings, so that listings page in the same order on every
    -- backend, whatever the database's locale.
    id           text COLLATE "C" NOT NULL,
    state        text NOT NULL,
    -- The reason given with the last change of state; '' when none was.
    state_reason text NOT NULL DEFAULT '',
    -- What uniqueness and lookups by email compare: the email in lower case
    -- today, a keyed blind index of it after issue 4. Never the email itself.
    email_lookup text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,

    CONSTRAINT customers_pkey PRIMARY KEY (id),
    CONSTRAINT customers_id_format CHECK (id ~ '^cus_[0-9A-Z]{26}$'),
    CONSTRAINT customers_state_known
        CHECK (state IN ('pending', 'approved', 'rejected', 'suspended', 'closed')),
    CONSTRAINT customers_email_lookup_key UNIQUE (email_lookup),
    CONSTRAINT customers_email_lookup_not_empty CHECK (email_lookup <> ''),
    CONSTRAINT customers_updated_after_created CHECK (updated_at >= created_at)
);

-- Listing by state pages through the ids of one state.
CREATE INDEX customers_state_id ON customers.customers (state, id);

CREATE TABLE customers.customer_pii (
    customer_id   text COLLATE "C" NOT NULL,
    -- Required by the contract.
    name          bytea NOT NULL,
    email         bytea NOT NULL, -- as the customer wrote it
    -- Optional: NULL when not given.
    phone         bytea,
    date_of_birth bytea,
    address       bytea, -- JSON of customers.Address
    tax_id        bytea,

    CONSTRAINT customer_pii_pkey PRIMARY KEY (customer_id),
    CONSTRAINT customer_pii_customer_fkey FOREIGN KEY (customer_id)
        REFERENCES customers.customers (id) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE customers.customer_pii;
DROP TABLE customers.customers;
