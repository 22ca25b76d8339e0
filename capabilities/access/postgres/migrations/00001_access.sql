-- The access domain: principals (the services that call the platform), the
-- roles granted to them, and their API keys.
--
--   principals 1───* principal_roles
--        │ 1
--        └───────* api_keys
--
-- An API key's secret is never stored: secret_hash is the SHA-256 of the
-- whole presented key ("plk_<prefix>_<secret>"), and prefix, the visible
-- part, is how a presented key is found. Nothing in this schema lets anyone
-- who reads it present a key.
--
-- Roles are names the gateway's configuration defines; this schema only
-- checks that they are well-formed.
--
-- Ids and roles compare with COLLATE "C", byte by byte as Go compares
-- strings, so listings page and roles sort in the same order on every
-- backend, whatever the database's locale.
--
-- There is no CHECK between a key's times (revoked_at >= created_at, say):
-- they are read from the clocks of whichever gateways created, revoked and
-- used the key, and a few milliseconds of skew between two of them must not
-- refuse a revocation or fail an authentication.

-- +goose Up
CREATE TABLE access.principals (
    -- "prn_" and a ULID.
    id          text COLLATE "C" NOT NULL,
    -- A service name, e.g. "payroll-app".
    name        text COLLATE "C" NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,

    CONSTRAINT principals_pkey PRIMARY KEY (id),
    CONSTRAINT principals_id_format CHECK (id ~ '^prn_[0-9A-Z]{26}$'),
    CONSTRAINT principals_name_key UNIQUE (name),
    CONSTRAINT principals_name_format CHECK (name ~ '^[a-z][a-z0-9-]*$' AND length(name) <= 64),
    CONSTRAINT principals_description_length CHECK (length(description) <= 200)
);

CREATE TABLE access.principal_roles (
    principal_id text COLLATE "C" NOT NULL,
    role         text COLLATE "C" NOT NULL,

    CONSTRAINT principal_roles_pkey PRIMARY KEY (principal_id, role),
    CONSTRAINT principal_roles_principal_fkey FOREIGN KEY (principal_id)
        REFERENCES access.principals (id),
    CONSTRAINT principal_roles_role_format CHECK (role ~ '^[a-z][a-z0-9_.-]*$' AND length(role) <= 64)
);

CREATE TABLE access.api_keys (
    -- "key_" and a ULID.
    id           text COLLATE "C" NOT NULL,
    principal_id text COLLATE "C" NOT NULL,
    -- The 8 hex characters after "plk_" in the presented key.
    prefix       text COLLATE "C" NOT NULL,
    -- SHA-256 of the presented key.
    secret_hash  bytea NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    -- NULL: never expires.
    expires_at   timestamptz,
    -- NULL: not revoked.
    revoked_at   timestamptz,
    -- NULL: never used. Written at most once a minute per key.
    last_used_at timestamptz,

    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_id_format CHECK (id ~ '^key_[0-9A-Z]{26}$'),
    CONSTRAINT api_keys_principal_fkey FOREIGN KEY (principal_id)
        REFERENCES access.principals (id),
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    CONSTRAINT api_keys_prefix_format CHECK (prefix ~ '^[0-9a-f]{8}$'),
    CONSTRAINT api_keys_secret_hash_length CHECK (octet_length(secret_hash) = 32),
    CONSTRAINT api_keys_description_length CHECK (length(description) <= 200)
);

-- ListApiKeys pages through the keys of one principal.
CREATE INDEX api_keys_principal_id_id ON access.api_keys (principal_id, id);

-- +goose Down
DROP TABLE access.api_keys;
DROP TABLE access.principal_roles;
DROP TABLE access.principals;
