-- The ledger domain: accounts, the transfers that move money between them,
-- the entries each transfer posts, and the holds that reserve money.
--
--   accounts 1───* entries *───1 transfers 1───* transfer_legs
--      │ 1                          │ 1 (reverses, at most once)
--      └──* holds ──(captured by)──>┘
--
-- The Service decides every rule; these constraints make sure that no
-- writer (a bug in a backend, a hand-run fix) can store books that do not
-- add up, even one that bypasses the Service:
--
--   - double entry: a transfer's entries sum to zero and post exactly what
--     its legs say (constraint triggers, checked at commit);
--   - an account's entries are numbered 1, 2, 3... without gaps, each
--     entry's balance_after is the previous one's plus its amount, and the
--     account's posted balance is the balance_after of its last entry
--     (foreign keys over generated columns, and a constraint trigger); so
--     posted is always the sum of the account's entries;
--   - a non_negative account's posted balance never goes below minus its
--     overdraft limit; a closed account holds nothing;
--   - money moves and is held only in the currency of the accounts
--     involved (composite foreign keys on (id, currency));
--   - a transfer is reversed at most once, and a hold captured at most once;
--   - what is posted is never changed or deleted: transfers, legs and
--     entries are append-only, accounts and holds are never deleted, a
--     closed account and a settled hold never change again.
--
-- Ids compare with COLLATE "C", byte by byte as Go compares strings, so
-- listings page in the same order on every backend and locks are taken in
-- the same order as Apply sorts them, whatever the database's locale.
--
-- Two facts are stored once and derived where read, so they cannot
-- disagree: which transfer reversed a transfer (the reversal's
-- reverses_transfer_id) and which hold a transfer captured (the hold's
-- capture_transfer_id).

-- +goose Up
CREATE TABLE ledger.accounts (
    id              text COLLATE "C" NOT NULL,
    currency        text NOT NULL,
    -- NULL for the platform's own accounts.
    customer_id     text COLLATE "C",
    balance_policy  text NOT NULL,
    overdraft_limit bigint NOT NULL DEFAULT 0,
    state           text NOT NULL,
    -- Why the account is frozen; '' unless it is.
    freeze_reason   text NOT NULL DEFAULT '',
    description     text NOT NULL DEFAULT '',
    -- The sum of the account's entries, kept in step with them by every
    -- posting (see accounts_last_entry_fkey), so that reading a balance
    -- never sums the history.
    posted          bigint NOT NULL DEFAULT 0,
    -- How many entries the account has: the seq of its last one.
    entry_count     bigint NOT NULL DEFAULT 0,
    -- entry_count, or NULL while the account has no entry: the foreign key
    -- to the last entry then checks nothing (MATCH SIMPLE).
    last_entry_seq  bigint GENERATED ALWAYS AS (NULLIF(entry_count, 0)) STORED,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,

    CONSTRAINT accounts_pkey PRIMARY KEY (id),
    -- Not a second key: what the composite foreign keys of legs and holds
    -- reference, so that money moves only in an account's own currency.
    CONSTRAINT accounts_id_currency_key UNIQUE (id, currency),
    CONSTRAINT accounts_id_format CHECK (id ~ '^lac_[0-9A-Z]{26}$'),
    CONSTRAINT accounts_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT accounts_customer_id_format CHECK (customer_id ~ '^cus_[0-9A-Z]{26}$'),
    CONSTRAINT accounts_balance_policy_known CHECK (balance_policy IN ('non_negative', 'unrestricted')),
    CONSTRAINT accounts_overdraft_limit_not_negative CHECK (overdraft_limit >= 0),
    -- An overdraft only means something below a floor.
    CONSTRAINT accounts_overdraft_needs_floor CHECK (overdraft_limit = 0 OR balance_policy = 'non_negative'),
    CONSTRAINT accounts_state_known CHECK (state IN ('open', 'frozen', 'closed')),
    CONSTRAINT accounts_freeze_reason_while_frozen CHECK ((state = 'frozen') = (freeze_reason <> '')),
    -- The floor. Holds lower only the available balance (posted less what
    -- active holds reserve), never the posted one, and whether a hold still
    -- reserves depends on the clock, so the database can hold the posted
    -- balance to the floor and leave the available one to the Service.
    CONSTRAINT accounts_posted_above_floor CHECK (balance_policy <> 'non_negative' OR posted >= -overdraft_limit),
    -- An account closes only empty, and money never moves in or out of a
    -- closed account.
    CONSTRAINT accounts_closed_empty CHECK (state <> 'closed' OR posted = 0),
    CONSTRAINT accounts_entry_count_not_negative CHECK (entry_count >= 0),
    CONSTRAINT accounts_no_entries_no_balance CHECK (entry_count > 0 OR posted = 0),
    CONSTRAINT accounts_updated_after_created CHECK (updated_at >= created_at)
);

-- ListAccounts of one customer pages through its ids.
CREATE INDEX accounts_customer_id ON ledger.accounts (customer_id, id) WHERE customer_id IS NOT NULL;

CREATE TABLE ledger.transfers (
    id                   text COLLATE "C" NOT NULL,
    currency             text NOT NULL,
    description          text NOT NULL DEFAULT '',
    -- The transfer this one reverses; NULL unless it is a reversal. Which
    -- transfer reversed a transfer is read from here too (the reversal's
    -- row), rather than stored a second time on the reversed one.
    reverses_transfer_id text COLLATE "C",
    posted_at            timestamptz NOT NULL,

    CONSTRAINT transfers_pkey PRIMARY KEY (id),
    -- Referenced by legs and holds, to keep one currency per transfer.
    CONSTRAINT transfers_id_currency_key UNIQUE (id, currency),
    CONSTRAINT transfers_id_format CHECK (id ~ '^trf_[0-9A-Z]{26}$'),
    CONSTRAINT transfers_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    -- A transfer is reversed at most once.
    CONSTRAINT transfers_reversed_once UNIQUE (reverses_transfer_id),
    CONSTRAINT transfers_not_reversing_itself CHECK (reverses_transfer_id <> id),
    -- A reversal exists, and gives back in the same currency.
    CONSTRAINT transfers_reverses_fkey FOREIGN KEY (reverses_transfer_id, currency)
        REFERENCES ledger.transfers (id, currency)
);

CREATE TABLE ledger.transfer_legs (
    transfer_id     text COLLATE "C" NOT NULL,
    -- The leg's place in the transfer, from 0: legs are read in this order.
    position        smallint NOT NULL,
    -- The transfer's currency, repeated so that the foreign keys below can
    -- tie both accounts to it; transfer_legs_transfer_fkey pins it to the
    -- transfer's, so the copy can never disagree.
    currency        text NOT NULL,
    from_account_id text COLLATE "C" NOT NULL,
    to_account_id   text COLLATE "C" NOT NULL,
    amount          bigint NOT NULL,

    CONSTRAINT transfer_legs_pkey PRIMARY KEY (transfer_id, position),
    CONSTRAINT transfer_legs_position_not_negative CHECK (position >= 0),
    CONSTRAINT transfer_legs_amount_positive CHECK (amount > 0),
    CONSTRAINT transfer_legs_distinct_accounts CHECK (from_account_id <> to_account_id),
    CONSTRAINT transfer_legs_transfer_fkey FOREIGN KEY (transfer_id, currency)
        REFERENCES ledger.transfers (id, currency),
    CONSTRAINT transfer_legs_from_fkey FOREIGN KEY (from_account_id, currency)
        REFERENCES ledger.accounts (id, currency),
    CONSTRAINT transfer_legs_to_fkey FOREIGN KEY (to_account_id, currency)
        REFERENCES ledger.accounts (id, currency)
);

-- ListTransfers of one account: the transfers it gave from, and those it
-- received in, each in id order.
CREATE INDEX transfer_legs_from ON ledger.transfer_legs (from_account_id, transfer_id);
CREATE INDEX transfer_legs_to ON ledger.transfer_legs (to_account_id, transfer_id);

CREATE TABLE ledger.entries (
    id             text COLLATE "C" NOT NULL,
    account_id     text COLLATE "C" NOT NULL,
    transfer_id    text COLLATE "C" NOT NULL,
    -- 1, 2, 3... per account, in posting order.
    seq            bigint NOT NULL,
    -- Signed: negative when money left the account.
    amount         bigint NOT NULL,
    -- The account's posted balance just after this entry.
    balance_after  bigint NOT NULL,
    -- When the transfer was posted; here as well as on the transfer so
    -- that BalanceAt reads one index of the account's entries.
    posted_at      timestamptz NOT NULL,
    -- The previous entry of the account, as the chain's foreign key needs
    -- it: its seq (NULL for the first entry, which has none) and its
    -- balance_after.
    prev_seq       bigint GENERATED ALWAYS AS (NULLIF(seq - 1, 0)) STORED,
    balance_before bigint GENERATED ALWAYS AS (balance_after - amount) STORED,

    CONSTRAINT entries_pkey PRIMARY KEY (id),
    CONSTRAINT entries_id_format CHECK (id ~ '^ent_[0-9A-Z]{26}$'),
    CONSTRAINT entries_seq_positive CHECK (seq > 0),
    CONSTRAINT entries_amount_not_zero CHECK (amount <> 0),
    CONSTRAINT entries_account_seq_key UNIQUE (account_id, seq),
    -- Implied by the key above; it exists because foreign keys can only
    -- reference a unique constraint on exactly their columns.
    CONSTRAINT entries_account_seq_balance_key UNIQUE (account_id, seq, balance_after),
    CONSTRAINT entries_account_fkey FOREIGN KEY (account_id) REFERENCES ledger.accounts (id),
    CONSTRAINT entries_transfer_fkey FOREIGN KEY (transfer_id) REFERENCES ledger.transfers (id),
    -- The chain: the first entry starts from zero, and every other one
    -- follows an entry of the same account whose seq is one less and whose
    -- balance_after is this one's balance before. With the unique key,
    -- balance_after is then the sum of the account's entries up to it.
    CONSTRAINT entries_first_from_zero CHECK (seq > 1 OR balance_after = amount),
    CONSTRAINT entries_follow_previous FOREIGN KEY (account_id, prev_seq, balance_before)
        REFERENCES ledger.entries (account_id, seq, balance_after)
);

-- The entries of a transfer, for the double-entry check.
CREATE INDEX entries_transfer_id ON ledger.entries (transfer_id);
-- BalanceAt sums an account's entries up to an instant from this index
-- alone. Not the balance_after of the last entry before the instant: the
-- clocks of different gateways need not agree, so posted_at need not grow
-- with seq.
CREATE INDEX entries_account_posted_at ON ledger.entries (account_id, posted_at) INCLUDE (amount);

-- The account's posted balance is the balance_after of its entry number
-- entry_count (and entries_counted below says there is none after it).
-- Deferred: an account and its entries reference each other, and a
-- transaction may write them in either order.
ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_last_entry_fkey
    FOREIGN KEY (id, last_entry_seq, posted) REFERENCES ledger.entries (account_id, seq, balance_after)
    DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE ledger.holds (
    id                  text COLLATE "C" NOT NULL,
    account_id          text COLLATE "C" NOT NULL,
    currency            text NOT NULL,
    amount              bigint NOT NULL,
    -- 'expired' is never stored: an active hold is expired once its
    -- expires_at has passed, so an expired hold frees its money without a
    -- job having to run.
    state               text NOT NULL,
    captured_amount     bigint NOT NULL DEFAULT 0,
    -- The transfer that captured the hold; NULL unless captured. Which
    -- hold a transfer captured is read from here.
    capture_transfer_id text COLLATE "C",
    description         text NOT NULL DEFAULT '',
    expires_at          timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,

    CONSTRAINT holds_pkey PRIMARY KEY (id),
    CONSTRAINT holds_id_format CHECK (id ~ '^hld_[0-9A-Z]{26}$'),
    CONSTRAINT holds_amount_positive CHECK (amount > 0),
    CONSTRAINT holds_state_known CHECK (state IN ('active', 'captured', 'released')),
    CONSTRAINT holds_captured_within_amount CHECK (captured_amount BETWEEN 0 AND amount),
    -- A captured hold, and only a captured hold, names the transfer that
    -- captured it and moved a positive amount.
    CONSTRAINT holds_capture_transfer_iff_captured CHECK ((state = 'captured') = (capture_transfer_id IS NOT NULL)),
    CONSTRAINT holds_captured_amount_iff_captured CHECK ((state = 'captured') = (captured_amount > 0)),
    -- A transfer captures at most one hold.
    CONSTRAINT holds_capture_transfer_key UNIQUE (capture_transfer_id),
    -- A hold reserves money of its account's currency...
    CONSTRAINT holds_account_fkey FOREIGN KEY (account_id, currency)
        REFERENCES ledger.accounts (id, currency),
    -- ...and is captured by a transfer in that currency. Deferred: the
    -- capture may record the hold before the transfer.
    CONSTRAINT holds_capture_transfer_fkey FOREIGN KEY (capture_transfer_id, currency)
        REFERENCES ledger.transfers (id, currency) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT holds_expires_after_created CHECK (expires_at > created_at),
    CONSTRAINT holds_updated_after_created CHECK (updated_at >= created_at)
);

-- HeldAt: the active holds of an account that have not expired.
CREATE INDEX holds_active_by_account ON ledger.holds (account_id, expires_at) INCLUDE (amount)
    WHERE state = 'active';

-- Double entry, enforced by the database itself. At commit (or when a
-- writer asks with SET CONSTRAINTS ... IMMEDIATE), for every transfer that
-- got a leg or an entry, and every new transfer:
--   - its entries sum to zero (entries_sum_to_zero);
--   - they change each account by exactly what its legs say
--     (entries_match_legs), so a transfer with legs has entries and the
--     other way round;
--   - it has a leg (transfers_have_legs).
-- Constraint triggers run once per row, so a transfer is checked once per
-- leg and entry it got (four times for a transfer of one leg); each check
-- is one statement over the transfer's rows, read by index. It runs with a
-- generic plan, cached for the session: planning it anew at each call
-- (PostgreSQL's first choice for a statement with parameters) cost more
-- than running it.
-- +goose StatementBegin
CREATE FUNCTION ledger.check_transfer_balances() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    transfer   text;
    has_legs   boolean;
    total      numeric; -- of the entries; NULL when there is none
    mismatched text;    -- an account whose entries are not what its legs say
BEGIN
    IF TG_TABLE_NAME = 'transfers' THEN
        transfer := NEW.id;
    ELSE
        transfer := NEW.transfer_id;
    END IF;

    -- One statement, so one plan, cached for the session: each account's
    -- net change by the entries and by the legs.
    SELECT bool_or(a.legs), sum(a.by_entries), min(a.account_id) FILTER (WHERE a.by_entries IS DISTINCT FROM a.by_legs)
      INTO has_legs, total, mismatched
      FROM (SELECT m.account_id, bool_or(m.is_leg) AS legs,
                   sum(m.amount) FILTER (WHERE NOT m.is_leg) AS by_entries,
                   sum(m.amount) FILTER (WHERE m.is_leg) AS by_legs
              FROM (SELECT account_id, amount, false AS is_leg FROM ledger.entries WHERE transfer_id = transfer
                    UNION ALL
                    SELECT from_account_id, -amount, true FROM ledger.transfer_legs WHERE transfer_id = transfer
                    UNION ALL
                    SELECT to_account_id, amount, true FROM ledger.transfer_legs WHERE transfer_id = transfer) AS m
             GROUP BY m.account_id) AS a;

    IF NOT coalesce(has_legs, false) THEN
        RAISE EXCEPTION 'transfer % has no legs', transfer
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transfers_have_legs',
                  SCHEMA = 'ledger', TABLE = 'transfers';
    END IF;
    IF total <> 0 THEN
        RAISE EXCEPTION 'the entries of transfer % sum to %, not zero', transfer, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_sum_to_zero',
                  SCHEMA = 'ledger', TABLE = 'entries';
    END IF;
    IF mismatched IS NOT NULL THEN
        RAISE EXCEPTION 'the entries of transfer % do not post what its legs move for ledger account %', transfer, mismatched
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_match_legs',
                  SCHEMA = 'ledger', TABLE = 'entries';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER transfers_balanced
    AFTER INSERT ON ledger.transfers DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_transfer_balances();
CREATE CONSTRAINT TRIGGER transfer_legs_balanced
    AFTER INSERT ON ledger.transfer_legs DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_transfer_balances();
CREATE CONSTRAINT TRIGGER entries_balanced
    AFTER INSERT ON ledger.entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_transfer_balances();

-- No entry beyond the account's entry_count: with accounts_last_entry_fkey,
-- the posted balance then counts every entry of the account, the last one
-- included. Deferred, as the entry is written before its account.
-- +goose StatementBegin
CREATE FUNCTION ledger.check_entry_counted() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM ledger.accounts WHERE id = NEW.account_id AND entry_count >= NEW.seq) THEN
        RAISE EXCEPTION 'entry % of ledger account % is not counted in its balance', NEW.seq, NEW.account_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_counted',
                  SCHEMA = 'ledger', TABLE = 'entries';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER entries_counted
    AFTER INSERT ON ledger.entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_entry_counted();

-- What is posted stays as posted: a mistake is undone by a reversal, never
-- by editing or deleting history. Accounts and holds change, but are never
-- deleted. A statement trigger costs nothing per inserted row.
-- +goose StatementBegin
CREATE FUNCTION ledger.refuse_rewriting_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on ledger.% is refused: the ledger''s history is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only',
              SCHEMA = 'ledger', TABLE = TG_TABLE_NAME;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_rewriting_history();
CREATE TRIGGER transfer_legs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger.transfer_legs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_rewriting_history();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger.entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_rewriting_history();
CREATE TRIGGER accounts_append_only BEFORE DELETE OR TRUNCATE ON ledger.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_rewriting_history();
CREATE TRIGGER holds_append_only BEFORE DELETE OR TRUNCATE ON ledger.holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_rewriting_history();

-- What an account or a hold is never changes, and neither does a closed
-- account or a settled (captured or released) hold: a capture cannot be
-- redone to point at a second transfer, and a closed account cannot be
-- reopened. The WHEN clauses run without calling the function, so an
-- allowed update (every posting updates its accounts) costs next to nothing.
-- +goose StatementBegin
CREATE FUNCTION ledger.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'this change of ledger.% % is refused: %', TG_TABLE_NAME, OLD.id, TG_ARGV[1]
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_ARGV[0],
              SCHEMA = 'ledger', TABLE = TG_TABLE_NAME;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER accounts_fixed BEFORE UPDATE ON ledger.accounts
    FOR EACH ROW
    WHEN (OLD.state = 'closed'
          OR NEW.id IS DISTINCT FROM OLD.id
          OR NEW.currency IS DISTINCT FROM OLD.currency
          OR NEW.customer_id IS DISTINCT FROM OLD.customer_id
          OR NEW.balance_policy IS DISTINCT FROM OLD.balance_policy
          OR NEW.overdraft_limit IS DISTINCT FROM OLD.overdraft_limit
          OR NEW.created_at IS DISTINCT FROM OLD.created_at
          OR NEW.entry_count < OLD.entry_count)
    EXECUTE FUNCTION ledger.refuse_change('accounts_fixed',
        'a closed account never changes, an account keeps its currency, customer, policy and history');
CREATE TRIGGER holds_settle_once BEFORE UPDATE ON ledger.holds
    FOR EACH ROW
    WHEN (OLD.state <> 'active'
          OR NEW.id IS DISTINCT FROM OLD.id
          OR NEW.account_id IS DISTINCT FROM OLD.account_id
          OR NEW.currency IS DISTINCT FROM OLD.currency
          OR NEW.amount IS DISTINCT FROM OLD.amount
          OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
          OR NEW.created_at IS DISTINCT FROM OLD.created_at)
    EXECUTE FUNCTION ledger.refuse_change('holds_settle_once',
        'a hold is captured or released once, and keeps its account, amount and expiry');

-- +goose Down
DROP TABLE ledger.holds;
ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_last_entry_fkey;
DROP TABLE ledger.entries;
DROP TABLE ledger.transfer_legs;
DROP TABLE ledger.transfers;
DROP TABLE ledger.accounts;
DROP FUNCTION ledger.refuse_change();
DROP FUNCTION ledger.refuse_rewriting_history();
DROP FUNCTION ledger.check_entry_counted();
DROP FUNCTION ledger.check_transfer_balances();
