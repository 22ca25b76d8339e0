-- Double entry, checked once per statement instead of once per row.
--
-- 00001 checked that a transfer adds up with constraint triggers, deferred
-- to COMMIT, one per row written: a transfer of one leg was checked four
-- times (its row, its leg, its two entries), each check a plpgsql call and
-- a query. At COMMIT those calls were an eighth of the machine's time
-- under load (docs/benchmarks.md). Now one trigger per table and statement
-- checks every transfer the statement wrote rows of, in one query over the
-- statement's rows (a transition table).
--
-- The rule this needs is a stricter one: a transfer, its legs and its
-- entries are written by one statement (the ledger writes them with one
-- INSERT ... WITH ..., see postTransferSQL), and the books add up after
-- every statement, not only at COMMIT. A writer that inserts a transfer in
-- one statement and its legs in the next is refused at the first. The
-- triggers of a statement's sub-statements run when the whole statement
-- has run, so they see every row it wrote.
--
-- What is checked is unchanged, for every transfer that got a row:
--   - it has a leg (transfers_have_legs);
--   - its entries sum to zero (entries_sum_to_zero);
--   - they change each account by exactly what its legs say
--     (entries_match_legs);
-- and for every new entry, that its account counts it in its balance
-- (entries_counted, a per-row check at COMMIT before): so an account's
-- entry_count and posted balance are also written by the statement that
-- writes its entries. That the balance is its last entry's
-- (accounts_last_entry_fkey) stays a foreign key checked at COMMIT.

-- +goose Up
DROP TRIGGER transfers_balanced ON ledger.transfers;
DROP TRIGGER transfer_legs_balanced ON ledger.transfer_legs;
DROP TRIGGER entries_balanced ON ledger.entries;
DROP FUNCTION ledger.check_transfer_balances();
DROP TRIGGER entries_counted ON ledger.entries;
DROP FUNCTION ledger.check_entry_counted();

-- The check is one query over the transfers the statement wrote rows of
-- (the transition table "written", whose transfer column depends on the
-- table): for each account, what the transfer's entries post and what its
-- legs move must be the same, and both there or both not (an entry on an
-- account no leg names is refused even if it nets to zero, as 00001 did).
-- That the entries sum to zero follows (the legs' changes do), and is
-- told apart only on the way to the error. Whether a transfer has a leg
-- is asked when the transfer is written: legs that come later in another
-- statement fail the check of their own.
--
-- Its plans are cached for the session, generic: planning anew at each
-- call costs more than running. A generic plan cannot see that the array
-- holds one transfer or two, and would scan the tables whole, or read
-- them through bitmaps (a file size asked of the kernel per table and
-- call); the function's settings keep it to the indexes.
-- +goose StatementBegin
CREATE FUNCTION ledger.check_transfers_balanced() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    transfers text[];
    transfer  text;
    account   text;    -- of the transfer, whose entries are not what its legs say
    total     numeric; -- of the transfer's entries
    entry_seq bigint;  -- of a new entry its account does not count
BEGIN
    IF TG_TABLE_NAME = 'transfers' THEN
        SELECT array_agg(id) INTO transfers FROM written;
        SELECT t.id INTO transfer
          FROM unnest(transfers) AS t(id)
         WHERE NOT EXISTS (SELECT FROM ledger.transfer_legs l WHERE l.transfer_id = t.id)
         LIMIT 1;
        IF transfer IS NOT NULL THEN
            RAISE EXCEPTION 'transfer % has no legs', transfer
                USING ERRCODE = 'check_violation', CONSTRAINT = 'transfers_have_legs',
                      SCHEMA = 'ledger', TABLE = 'transfers';
        END IF;
    ELSE
        SELECT array_agg(DISTINCT transfer_id) INTO transfers FROM written;
    END IF;

    SELECT m.transfer_id, m.account_id INTO transfer, account
      FROM (SELECT l.transfer_id, v.account_id, v.amount, true AS is_leg
              FROM ledger.transfer_legs l
             CROSS JOIN LATERAL (VALUES (l.from_account_id, -l.amount), (l.to_account_id, l.amount))
                   AS v(account_id, amount)
             WHERE l.transfer_id = ANY (transfers)
            UNION ALL
            SELECT e.transfer_id, e.account_id, e.amount, false
              FROM ledger.entries e
             WHERE e.transfer_id = ANY (transfers)) AS m
     GROUP BY m.transfer_id, m.account_id
    HAVING sum(m.amount) FILTER (WHERE m.is_leg) IS DISTINCT FROM sum(m.amount) FILTER (WHERE NOT m.is_leg)
     LIMIT 1;
    IF transfer IS NULL THEN
        IF TG_TABLE_NAME = 'entries' THEN
            -- No new entry beyond its account's entry_count: with
            -- accounts_last_entry_fkey, the posted balance then counts
            -- every entry of the account, the last one included.
            SELECT w.account_id, w.seq INTO account, entry_seq
              FROM written w JOIN ledger.accounts a ON a.id = w.account_id
             WHERE a.entry_count < w.seq
             LIMIT 1;
            IF account IS NOT NULL THEN
                RAISE EXCEPTION 'entry % of ledger account % is not counted in its balance', entry_seq, account
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_counted',
                          SCHEMA = 'ledger', TABLE = 'entries';
            END IF;
        END IF;
        RETURN NULL;
    END IF;

    SELECT sum(e.amount) INTO total FROM ledger.entries e WHERE e.transfer_id = transfer;
    IF total <> 0 THEN
        RAISE EXCEPTION 'the entries of transfer % sum to %, not zero', transfer, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_sum_to_zero',
                  SCHEMA = 'ledger', TABLE = 'entries';
    END IF;
    RAISE EXCEPTION 'the entries of transfer % do not post what its legs move for ledger account %', transfer, account
        USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_match_legs',
              SCHEMA = 'ledger', TABLE = 'entries';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER transfers_balanced AFTER INSERT ON ledger.transfers
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.check_transfers_balanced();
CREATE TRIGGER transfer_legs_balanced AFTER INSERT ON ledger.transfer_legs
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.check_transfers_balanced();
CREATE TRIGGER entries_balanced AFTER INSERT ON ledger.entries
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.check_transfers_balanced();

-- +goose Down
DROP TRIGGER transfers_balanced ON ledger.transfers;
DROP TRIGGER transfer_legs_balanced ON ledger.transfer_legs;
DROP TRIGGER entries_balanced ON ledger.entries;
DROP FUNCTION ledger.check_transfers_balanced();

-- 00001's per-row check, as it was.
-- +goose StatementBegin
CREATE FUNCTION ledger.check_transfer_balances() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    transfer   text;
    has_legs   boolean;
    total      numeric;
    mismatched text;
BEGIN
    IF TG_TABLE_NAME = 'transfers' THEN
        transfer := NEW.id;
    ELSE
        transfer := NEW.transfer_id;
    END IF;

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
