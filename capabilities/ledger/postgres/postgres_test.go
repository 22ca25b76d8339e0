package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/ledger"
	"plinth.dev/plinth/capabilities/ledger/ledgertest"
	"plinth.dev/plinth/capabilities/ledger/postgres"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway/idempotency"
	"plinth.dev/plinth/internal/ids"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/migrate"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/pgtx"
	"plinth.dev/plinth/internal/seal"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newPool returns a pool over a new database with the ledger schema
// migrated.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return pgtest.NewPool(t, 8, pgtest.Schema{Name: "ledger", Migrations: postgres.Migrations()})
}

// The conformance suite, with the idempotency records in the same database,
// so that a request's effect and its record commit together.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledgertest.Backend {
		pool := newPool(t)
		if _, err := migrate.Up(context.Background(), pool, "idempotency", idempotency.Migrations, nil); err != nil {
			t.Fatal(err)
		}
		kr, err := keyring.NewLocal("")
		if err != nil {
			t.Fatal(err)
		}
		return ledgertest.Backend{Store: postgres.New(pool), Idempotency: idempotency.NewPostgresStore(pool, seal.New(kr))}
	})
}

// epoch has nanoseconds, finer than what PostgreSQL keeps.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func account(policy ledger.BalancePolicy, overdraft int64) ledger.Account {
	at := epoch.Truncate(time.Microsecond)
	return ledger.Account{
		ID:             ids.New("lac"),
		Currency:       "USD",
		Policy:         policy,
		OverdraftLimit: overdraft,
		State:          ledger.AccountOpen,
		Description:    "test",
		CreatedAt:      at,
		UpdatedAt:      at,
	}
}

// open stores accounts and returns their ids.
func open(t testing.TB, s *postgres.Store, accounts ...ledger.Account) []string {
	t.Helper()
	out := make([]string, len(accounts))
	for i, a := range accounts {
		if err := s.CreateAccount(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		out[i] = a.ID
	}
	return out
}

// post records tr with its entries inside an Apply, made as
// ledger.entriesFor makes them, with no rule checked: the database's
// constraints are what these tests are about.
func post(tx ledger.Tx, tr ledger.Transfer) error {
	running := map[string]ledger.Account{}
	var entries []ledger.Entry
	for _, l := range tr.Legs {
		for _, side := range [2]struct {
			id     string
			amount int64
		}{{l.From, -l.Amount}, {l.To, l.Amount}} {
			a, ok := running[side.id]
			if !ok {
				a = tx.Account(side.id)
			}
			a.EntryCount++
			a.Posted += side.amount
			running[side.id] = a
			entries = append(entries, ledger.Entry{
				ID: ids.New("ent"), AccountID: side.id, TransferID: tr.ID,
				Seq: a.EntryCount, Amount: side.amount, BalanceAfter: a.Posted, PostedAt: tr.PostedAt,
			})
		}
	}
	return tx.PostTransfer(tr, entries)
}

func transfer(at time.Time, legs ...ledger.Leg) ledger.Transfer {
	return ledger.Transfer{ID: ids.New("trf"), Currency: "USD", Legs: legs, Description: "test", PostedAt: at}
}

func lockOf(tr ledger.Transfer) ledger.Lock {
	var l ledger.Lock
	for _, leg := range tr.Legs {
		l.AccountIDs = append(l.AccountIDs, leg.From, leg.To)
	}
	return l
}

// move posts a transfer of legs in an Apply that locks their accounts.
func move(t testing.TB, s *postgres.Store, at time.Time, legs ...ledger.Leg) ledger.Transfer {
	t.Helper()
	tr := transfer(at, legs...)
	if err := s.Apply(context.Background(), lockOf(tr), func(tx ledger.Tx) error { return post(tx, tr) }); err != nil {
		t.Fatalf("post %v: %v", legs, err)
	}
	return tr
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("ledger", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if b.Migrations == nil {
		t.Fatal("the postgres backend registers no migrations")
	}
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := b.Open(t.Context(), registry.Env{Postgres: func(context.Context) (*pgxpool.Pool, error) { return pool, nil }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := store.(ledger.Store); !ok {
		t.Fatalf("Open returned a %T, not a ledger.Store", store)
	}
	if _, ok := store.(registry.Pinger); !ok {
		t.Errorf("Open returned a %T, which /readyz cannot ping", store)
	}
	if _, err := b.Open(t.Context(), registry.Env{}); err == nil {
		t.Error("Open without a pool succeeded")
	}
}

// inTx runs statements in one transaction and commits it, so that deferred
// constraints are checked; it returns the first error.
func inTx(ctx context.Context, pool *pgxpool.Pool, statements ...string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, sql := range statements {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
}

// The schema itself refuses rows that break the ledger's invariants, so
// that a bug in any writer (or a hand-run fix) cannot store them.
func TestSchemaRefusesWhatTheLedgerForbids(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := postgres.New(pool)
	ctx := t.Context()

	// Fixed ids, so the statements below can name them.
	const (
		settle = "lac_00000000000000000000000001"
		wallet = "lac_00000000000000000000000002"
		euros  = "lac_00000000000000000000000003"
		closed = "lac_00000000000000000000000004"
		trf1   = "trf_00000000000000000000000001"
		hold1  = "hld_00000000000000000000000001"
		hold2  = "hld_00000000000000000000000002"
	)
	mk := func(id, currency string, policy ledger.BalancePolicy) ledger.Account {
		a := account(policy, 0)
		a.ID, a.Currency = id, currency
		return a
	}
	open(t, s, mk(settle, "USD", ledger.PolicyUnrestricted), mk(wallet, "USD", ledger.PolicyNonNegative),
		mk(euros, "EUR", ledger.PolicyNonNegative), mk(closed, "USD", ledger.PolicyNonNegative))
	tr := ledger.Transfer{ID: trf1, Currency: "USD", Legs: []ledger.Leg{{From: settle, To: wallet, Amount: 100}}, PostedAt: epoch}
	if err := s.Apply(ctx, lockOf(tr), func(tx ledger.Tx) error { return post(tx, tr) }); err != nil {
		t.Fatal(err)
	}
	if err := inTx(ctx, pool,
		`UPDATE ledger.accounts SET state = 'closed' WHERE id = '`+closed+`'`,
		`INSERT INTO ledger.holds (id, account_id, currency, amount, state, expires_at, created_at, updated_at)
		 VALUES ('`+hold1+`', '`+wallet+`', 'USD', 10, 'active', now() + interval '1 hour', now(), now()),
		        ('`+hold2+`', '`+wallet+`', 'USD', 10, 'released', now() + interval '1 hour', now(), now())`,
	); err != nil {
		t.Fatal(err)
	}

	const (
		checkViolation    = "23514"
		uniqueViolation   = "23505"
		foreignKey        = "23503"
		restrictViolation = "23001"
	)
	newAccount := func(id, currency, customer, policy string, overdraft int, state, reason string) string {
		if customer != "NULL" {
			customer = "'" + customer + "'"
		}
		return fmt.Sprintf(`INSERT INTO ledger.accounts (id, currency, customer_id, balance_policy, overdraft_limit, state, freeze_reason, created_at, updated_at)
			VALUES ('%s', '%s', %s, '%s', %d, '%s', '%s', now(), now())`, id, currency, customer, policy, overdraft, state, reason)
	}
	const id5 = "lac_00000000000000000000000005"
	// A transfer of 7 from settle to wallet, with its leg, for the entries
	// the cases below get wrong. A transfer, its legs and its entries are
	// written by one statement (together), as the books must add up after
	// every statement.
	trf2 := "trf_00000000000000000000000002"
	newTransfer := `INSERT INTO ledger.transfers (id, currency, posted_at) VALUES ('` + trf2 + `', 'USD', now())`
	legOf := func(transfer string, position int, from, to string, amount int) string {
		return fmt.Sprintf(`INSERT INTO ledger.transfer_legs (transfer_id, position, currency, from_account_id, to_account_id, amount)
			VALUES ('%s', %d, 'USD', '%s', '%s', %d)`, transfer, position, from, to, amount)
	}
	newLeg := legOf(trf2, 0, settle, wallet, 7)
	entryOf := func(transfer string, n int, account string, seq, amount, balanceAfter int) string {
		return fmt.Sprintf(`INSERT INTO ledger.entries (id, account_id, transfer_id, seq, amount, balance_after, posted_at)
			VALUES ('ent_%026d', '%s', '%s', %d, %d, %d, now())`, n, account, transfer, seq, amount, balanceAfter)
	}
	entry := func(n int, account string, seq, amount, balanceAfter int) string {
		return entryOf(trf2, n, account, seq, amount, balanceAfter)
	}
	together := func(statements ...string) string {
		last := len(statements) - 1
		with := make([]string, last)
		for i, sql := range statements[:last] {
			with[i] = fmt.Sprintf("s%d AS (%s)", i, sql)
		}
		return "WITH " + strings.Join(with, ", ") + " " + statements[last]
	}
	bump := func(account string, seq, balance int) string {
		return fmt.Sprintf(`UPDATE ledger.accounts SET entry_count = %d, posted = %d WHERE id = '%s'`, seq, balance, account)
	}
	// settle is at -100 after 1 entry, wallet at 100 after 1 entry.
	newHold := func(amount, currency, state string) string {
		return `INSERT INTO ledger.holds (id, account_id, currency, amount, state, expires_at, created_at, updated_at)
			VALUES ('hld_00000000000000000000000009', '` + wallet + `', '` + currency + `', ` + amount + `, '` + state + `', now() + interval '1 hour', now(), now())`
	}

	for _, tc := range []struct {
		name             string
		statements       []string
		code, constraint string
	}{
		// Accounts.
		{"malformed account id", []string{newAccount("lac_1", "USD", "NULL", "non_negative", 0, "open", "")}, checkViolation, "accounts_id_format"},
		{"malformed currency", []string{newAccount(id5, "usd", "NULL", "non_negative", 0, "open", "")}, checkViolation, "accounts_currency_format"},
		{"malformed customer", []string{newAccount(id5, "USD", "cus_1", "non_negative", 0, "open", "")}, checkViolation, "accounts_customer_id_format"},
		{"unspecified policy", []string{newAccount(id5, "USD", "NULL", "unspecified", 0, "open", "")}, checkViolation, "accounts_balance_policy_known"},
		{"negative overdraft", []string{newAccount(id5, "USD", "NULL", "non_negative", -1, "open", "")}, checkViolation, "accounts_overdraft_limit_not_negative"},
		{"overdraft without floor", []string{newAccount(id5, "USD", "NULL", "unrestricted", 5, "open", "")}, checkViolation, "accounts_overdraft_needs_floor"},
		{"unknown state", []string{newAccount(id5, "USD", "NULL", "non_negative", 0, "suspended", "")}, checkViolation, "accounts_state_known"},
		{"frozen without reason", []string{newAccount(id5, "USD", "NULL", "non_negative", 0, "frozen", "")}, checkViolation, "accounts_freeze_reason_while_frozen"},
		{"reason while open", []string{newAccount(id5, "USD", "NULL", "non_negative", 0, "open", "why")}, checkViolation, "accounts_freeze_reason_while_frozen"},
		{"balance without entries", []string{`INSERT INTO ledger.accounts (id, currency, balance_policy, state, posted, created_at, updated_at)
			VALUES ('` + id5 + `', 'USD', 'unrestricted', 'open', 5, now(), now())`}, checkViolation, "accounts_no_entries_no_balance"},
		{"below the floor", []string{bump(wallet, 2, -7)}, checkViolation, "accounts_posted_above_floor"},
		{"closing with a balance", []string{`UPDATE ledger.accounts SET state = 'closed' WHERE id = '` + wallet + `'`}, checkViolation, "accounts_closed_empty"},
		{"reopening a closed account", []string{`UPDATE ledger.accounts SET state = 'open' WHERE id = '` + closed + `'`}, checkViolation, "accounts_fixed"},
		{"changing currency", []string{`UPDATE ledger.accounts SET currency = 'EUR' WHERE id = '` + settle + `'`}, checkViolation, "accounts_fixed"},
		{"deleting an account", []string{`DELETE FROM ledger.accounts WHERE id = '` + closed + `'`}, restrictViolation, "accounts_append_only"},

		// Double entry.
		{"entries that do not sum to zero", []string{
			together(newTransfer, newLeg, entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 8, 108)), bump(settle, 2, -107), bump(wallet, 2, 108),
		}, checkViolation, "entries_sum_to_zero"},
		{"entries that are not the legs", []string{
			together(newTransfer, newLeg, entry(1, wallet, 2, -7, 93), entry(2, settle, 2, 7, -93)), bump(wallet, 2, 93), bump(settle, 2, -93),
		}, checkViolation, "entries_match_legs"},
		{"legs without entries", []string{together(newTransfer, newLeg)}, checkViolation, "entries_match_legs"},
		{"entries on an account no leg moves, netting to zero", []string{together(newTransfer, newLeg,
			entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 7, 107), entry(3, euros, 1, 3, 3), entry(4, euros, 2, -3, 0),
			bump(settle, 2, -107), bump(wallet, 2, 107), bump(euros, 2, 0)),
		}, checkViolation, "entries_match_legs"},
		{"transfer without legs", []string{newTransfer}, checkViolation, "transfers_have_legs"},
		// Not at COMMIT only: after the statement that wrote the transfer,
		// even if what would balance it comes next.
		{"transfer balanced by a later statement", []string{
			newTransfer, newLeg, entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 7, 107), bump(settle, 2, -107), bump(wallet, 2, 107),
		}, checkViolation, "transfers_have_legs"},
		{"leg added to a posted transfer", []string{legOf(trf1, 1, settle, wallet, 5)}, checkViolation, "entries_match_legs"},
		{"entries added to a posted transfer", []string{
			together(entryOf(trf1, 1, settle, 2, -5, -105), entryOf(trf1, 2, wallet, 2, 5, 105)), bump(settle, 2, -105), bump(wallet, 2, 105),
		}, checkViolation, "entries_match_legs"},
		{"entry of a missing transfer", []string{entry(1, settle, 2, -7, -107)}, foreignKey, "entries_transfer_fkey"},

		// Each account's chain of entries and its balance.
		{"balance not its last entry's", []string{
			together(newTransfer, newLeg, entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 7, 107), bump(settle, 2, -107), bump(wallet, 2, 100)),
		}, foreignKey, "accounts_last_entry_fkey"},
		{"entry left out of the balance", []string{
			together(newTransfer, newLeg, entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 7, 107), bump(settle, 2, -107)),
		}, checkViolation, "entries_counted"},
		// Counted by the statement that writes the entry, not a later one.
		{"entry counted by a later statement", []string{
			together(newTransfer, newLeg, entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 7, 107)), bump(settle, 2, -107), bump(wallet, 2, 107),
		}, checkViolation, "entries_counted"},
		// A foreign key of a row is checked before the statement's double
		// entry: these write to the posted trf1 alone, so that no other
		// statement trigger of theirs runs first.
		{"gap in the entries", []string{entryOf(trf1, 1, settle, 3, -7, -107)}, foreignKey, "entries_follow_previous"},
		{"running balance broken", []string{entryOf(trf1, 1, settle, 2, -7, -110)}, foreignKey, "entries_follow_previous"},
		{"entry numbered twice", []string{together(newTransfer, newLeg, entry(1, settle, 1, -7, -7))}, uniqueViolation, "entries_account_seq_key"},
		{"first entry not from zero", []string{together(newTransfer, newLeg, entry(1, euros, 1, 7, 8))}, checkViolation, "entries_first_from_zero"},
		{"entry of nothing", []string{together(newTransfer, newLeg, entry(1, settle, 2, 0, -100))}, checkViolation, "entries_amount_not_zero"},
		{"entry numbered zero", []string{together(newTransfer, newLeg, entry(1, settle, 0, -7, -7))}, checkViolation, "entries_seq_positive"},

		// Legs.
		{"leg of nothing", []string{together(newTransfer, legOf(trf2, 0, settle, wallet, 0))}, checkViolation, "transfer_legs_amount_positive"},
		{"leg to itself", []string{together(newTransfer, legOf(trf2, 0, wallet, wallet, 7))}, checkViolation, "transfer_legs_distinct_accounts"},
		{"leg to an account in another currency", []string{legOf(trf1, 1, settle, euros, 7)}, foreignKey, "transfer_legs_to_fkey"},
		{"leg in another currency than its transfer", []string{
			strings.Replace(strings.Replace(strings.Replace(legOf(trf1, 1, settle, wallet, 7), "'USD'", "'EUR'", 1), settle, closed, 1), wallet, euros, 1)},
			foreignKey, "transfer_legs_transfer_fkey"},

		// Transfers.
		{"reversed twice", []string{
			`INSERT INTO ledger.transfers (id, currency, reverses_transfer_id, posted_at) VALUES ('trf_00000000000000000000000008', 'USD', '` + trf1 + `', now()),
			 ('trf_00000000000000000000000009', 'USD', '` + trf1 + `', now())`,
		}, uniqueViolation, "transfers_reversed_once"},
		{"reversal in another currency", []string{
			`INSERT INTO ledger.transfers (id, currency, reverses_transfer_id, posted_at) VALUES ('trf_00000000000000000000000008', 'EUR', '` + trf1 + `', now())`,
		}, foreignKey, "transfers_reverses_fkey"},
		{"rewriting a transfer", []string{`UPDATE ledger.transfers SET description = 'oops'`}, restrictViolation, "transfers_append_only"},
		{"rewriting an entry", []string{`UPDATE ledger.entries SET amount = amount * 2`}, restrictViolation, "entries_append_only"},
		{"deleting a leg", []string{`DELETE FROM ledger.transfer_legs`}, restrictViolation, "transfer_legs_append_only"},
		{"emptying the entries", []string{`TRUNCATE ledger.entries CASCADE`}, restrictViolation, "entries_append_only"},

		// Holds.
		{"hold of nothing", []string{newHold("0", "USD", "active")}, checkViolation, "holds_amount_positive"},
		{"hold in another currency", []string{newHold("5", "EUR", "active")}, foreignKey, "holds_account_fkey"},
		{"expired stored", []string{`UPDATE ledger.holds SET state = 'expired' WHERE id = '` + hold1 + `'`}, checkViolation, "holds_state_known"},
		{"captured by nothing", []string{`UPDATE ledger.holds SET state = 'captured', captured_amount = 5 WHERE id = '` + hold1 + `'`}, checkViolation, "holds_capture_transfer_iff_captured"},
		{"captured beyond the hold", []string{`UPDATE ledger.holds SET state = 'captured', captured_amount = 11, capture_transfer_id = '` + trf1 + `' WHERE id = '` + hold1 + `'`}, checkViolation, "holds_captured_within_amount"},
		{"captured by a missing transfer", []string{`UPDATE ledger.holds SET state = 'captured', captured_amount = 5, capture_transfer_id = 'trf_00000000000000000000000009' WHERE id = '` + hold1 + `'`}, foreignKey, "holds_capture_transfer_fkey"},
		{"hold moved to another currency", []string{`UPDATE ledger.holds SET currency = 'EUR' WHERE id = '` + hold1 + `'`}, checkViolation, "holds_settle_once"},
		{"settled hold reopened", []string{`UPDATE ledger.holds SET state = 'active' WHERE id = '` + hold2 + `'`}, checkViolation, "holds_settle_once"},
		{"hold grown", []string{`UPDATE ledger.holds SET amount = 20 WHERE id = '` + hold1 + `'`}, checkViolation, "holds_settle_once"},
		{"deleting a hold", []string{`DELETE FROM ledger.holds`}, restrictViolation, "holds_append_only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pgtest.WantViolation(t, inTx(ctx, pool, tc.statements...), tc.code, tc.constraint)
		})
	}

	// And the statements that make a transfer right are accepted, so the
	// refusals above are the constraint's doing.
	if err := inTx(ctx, pool, together(newTransfer, newLeg, entry(1, settle, 2, -7, -107), entry(2, wallet, 2, 7, 107),
		bump(settle, 2, -107), bump(wallet, 2, 107))); err != nil {
		t.Fatalf("a transfer that adds up was refused: %v", err)
	}
	if err := inTx(ctx, pool, `UPDATE ledger.holds SET state = 'captured', captured_amount = 7, capture_transfer_id = '`+trf2+`', updated_at = now() WHERE id = '`+hold1+`'`); err != nil {
		t.Fatalf("a capture was refused: %v", err)
	}
}

// Ids compare byte by byte, as Go compares strings, whatever the locale of
// the database: locks are taken in Apply's order, and listings page in the
// memory backend's.
func TestIDsCompareBytewise(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	rows, err := pool.Query(t.Context(), `
SELECT a.attrelid::regclass::text || '.' || a.attname, coalesce(co.collname, '')
  FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attrelid IN ('ledger.accounts'::regclass, 'ledger.transfers'::regclass, 'ledger.transfer_legs'::regclass,
                      'ledger.entries'::regclass, 'ledger.holds'::regclass)
   AND (a.attname LIKE '%id' OR a.attname LIKE '%_id') AND a.attnum > 0`)
	if err != nil {
		t.Fatal(err)
	}
	collations, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Column, Collation string
	}])
	if err != nil {
		t.Fatal(err)
	}
	if len(collations) < 10 {
		t.Fatalf("found %d id columns, want every one of them", len(collations))
	}
	for _, c := range collations {
		if c.Collation != "C" {
			t.Errorf("%s has collation %q, want \"C\"", c.Column, c.Collation)
		}
	}
}

// Apply locks accounts in id order whatever the order the Lock names them
// in: two callers that move money back and forth between the same accounts,
// naming them in opposite orders, never deadlock, and no movement is lost.
func TestApplyLocksInOrder(t *testing.T) {
	t.Parallel()
	s := postgres.New(newPool(t))
	ctx := t.Context()
	ab := open(t, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyUnrestricted, 0))
	a, b, c := ab[0], ab[1], ab[2]

	const rounds = 40
	var wg sync.WaitGroup
	errs := make(chan error, 3*rounds)
	for _, order := range [][3]string{{a, b, c}, {c, b, a}, {b, c, a}} {
		wg.Go(func() {
			for range rounds {
				tr := transfer(epoch, ledger.Leg{From: order[0], To: order[1], Amount: 3}, ledger.Leg{From: order[1], To: order[2], Amount: 1})
				err := s.Apply(ctx, ledger.Lock{AccountIDs: []string{order[0], order[1], order[2], order[0]}}, func(tx ledger.Tx) error {
					// Give the others time to want the same rows.
					time.Sleep(100 * time.Microsecond)
					return post(tx, tr)
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Apply: %v", err)
	}
	var sum, entries int64
	for _, id := range ab {
		acc, _, err := s.GetAccount(ctx, id, epoch)
		if err != nil {
			t.Fatal(err)
		}
		sum += acc.Posted
		entries += acc.EntryCount
	}
	if sum != 0 || entries != 3*rounds*4 {
		t.Errorf("balances sum to %d over %d entries, want 0 over %d", sum, entries, 3*rounds*4)
	}
}

// Apply checks every account exists before calling change, and names the
// first missing one in id order; then the hold, then the transfer.
func TestApplyNotFound(t *testing.T) {
	t.Parallel()
	s := postgres.New(newPool(t))
	ctx := t.Context()
	existing := open(t, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyUnrestricted, 0))
	tr := move(t, s, epoch, ledger.Leg{From: existing[0], To: existing[1], Amount: 1})
	missing1, missing2 := "lac_00000000000000000000000001", "lac_00000000000000000000000002"
	called := false
	change := func(ledger.Tx) error { called = true; return nil }

	for _, tc := range []struct {
		name string
		lock ledger.Lock
		want error
	}{
		{"first missing account in id order", ledger.Lock{AccountIDs: []string{existing[0], missing2, missing1}, HoldID: "hld_00000000000000000000000001"},
			ledger.AccountNotFound(missing1)},
		{"missing hold", ledger.Lock{AccountIDs: existing, HoldID: "hld_00000000000000000000000001", TransferID: "trf_00000000000000000000000001"},
			ledger.HoldNotFound("hld_00000000000000000000000001")},
		{"missing transfer", ledger.Lock{AccountIDs: existing, TransferID: "trf_00000000000000000000000001"},
			ledger.TransferNotFound("trf_00000000000000000000000001")},
	} {
		err := s.Apply(ctx, tc.lock, change)
		var nf *domainerr.NotFoundError
		if !errors.As(err, &nf) || err.Error() != tc.want.Error() {
			t.Errorf("%s: Apply = %v, want %v", tc.name, err, tc.want)
		}
	}
	if called {
		t.Error("change was called although something the Lock named does not exist")
	}
	if err := s.Apply(ctx, ledger.Lock{AccountIDs: existing, TransferID: tr.ID}, change); err != nil || !called {
		t.Errorf("Apply over existing rows = %v (change called: %v)", err, called)
	}
}

// What change records is visible to its later reads, and gone if change
// fails or panics.
func TestApplyWritesAllOrNothing(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := postgres.New(pool)
	ctx := t.Context()
	ab := open(t, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyNonNegative, 0))
	a, b := ab[0], ab[1]
	tr := transfer(epoch, ledger.Leg{From: a, To: b, Amount: 50})
	h := ledger.Hold{
		ID: ids.New("hld"), AccountID: b, Currency: "USD", Amount: 20, State: ledger.HoldActive,
		ExpiresAt: epoch.Add(time.Hour), CreatedAt: epoch, UpdatedAt: epoch,
	}
	refused := errors.New("refused")

	err := s.Apply(ctx, ledger.Lock{AccountIDs: []string{a, b}}, func(tx ledger.Tx) error {
		if err := post(tx, tr); err != nil {
			return err
		}
		if got := tx.Account(b); got.Posted != 50 || got.EntryCount != 1 {
			t.Errorf("after PostTransfer, Account = posted %d after %d entries, want 50 after 1", got.Posted, got.EntryCount)
		}
		if err := tx.SaveHold(h); err != nil {
			return err
		}
		if held, err := tx.HeldAt(b, epoch); err != nil || held != 20 {
			t.Errorf("after SaveHold, HeldAt = %d, %v; want 20", held, err)
		}
		if held, err := tx.HeldAt(b, h.ExpiresAt); err != nil || held != 0 {
			t.Errorf("HeldAt the hold's expiry = %d, %v; want 0", held, err)
		}
		frozen := tx.Account(a)
		frozen.State, frozen.FreezeReason, frozen.UpdatedAt = ledger.AccountFrozen, "audit", epoch.Add(time.Second)
		if err := tx.UpdateAccount(frozen); err != nil {
			return err
		}
		if got := tx.Account(a); got.State != ledger.AccountFrozen || got.Posted != -50 {
			t.Errorf("after UpdateAccount, Account = %+v", got)
		}
		return refused
	})
	if err != refused {
		t.Fatalf("Apply = %v, want change's own error", err)
	}
	wantUntouched := func(when string) {
		t.Helper()
		for _, id := range ab {
			got, held, err := s.GetAccount(ctx, id, epoch)
			if err != nil {
				t.Fatal(err)
			}
			if got.Posted != 0 || got.EntryCount != 0 || got.State != ledger.AccountOpen || held != 0 {
				t.Errorf("%s, %s is %+v with %d held; want it untouched", when, id, got, held)
			}
		}
		if _, err := s.GetTransfer(ctx, tr.ID); !errors.As(err, new(*domainerr.NotFoundError)) {
			t.Errorf("%s, GetTransfer = %v, want NotFound", when, err)
		}
		if _, err := s.GetHold(ctx, h.ID); !errors.As(err, new(*domainerr.NotFoundError)) {
			t.Errorf("%s, GetHold = %v, want NotFound", when, err)
		}
	}
	wantUntouched("after a change that failed")

	func() {
		defer func() {
			if p := recover(); p == nil {
				t.Error("Apply swallowed change's panic")
			}
		}()
		_ = s.Apply(ctx, ledger.Lock{AccountIDs: []string{a, b}}, func(tx ledger.Tx) error {
			if err := post(tx, tr); err != nil {
				return err
			}
			tx.Account("lac_00000000000000000000000001") // not locked: panics
			return nil
		})
	}()
	wantUntouched("after a change that panicked")
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still acquired after the panic", n)
	}
}

// A Tx refuses to record half of a fact the database keeps once: a
// reversal not marked, a capture whose hold is not saved as captured.
func TestApplyRefusesHalfAFact(t *testing.T) {
	t.Parallel()
	s := postgres.New(newPool(t))
	ctx := t.Context()
	ab := open(t, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyUnrestricted, 0))
	a, b := ab[0], ab[1]
	original := move(t, s, epoch, ledger.Leg{From: a, To: b, Amount: 5})
	h := ledger.Hold{ID: ids.New("hld"), AccountID: a, Currency: "USD", Amount: 5, State: ledger.HoldActive,
		ExpiresAt: epoch.Add(time.Hour), CreatedAt: epoch, UpdatedAt: epoch}
	if err := s.Apply(ctx, ledger.Lock{AccountIDs: []string{a}}, func(tx ledger.Tx) error { return tx.SaveHold(h) }); err != nil {
		t.Fatal(err)
	}

	reversal := transfer(epoch, ledger.Leg{From: b, To: a, Amount: 5})
	reversal.ReversesID = original.ID
	lock := ledger.Lock{AccountIDs: []string{a, b}, TransferID: original.ID}
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error { return post(tx, reversal) }); err == nil {
		t.Error("a reversal posted without MarkReversed was accepted")
	}
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error { return tx.MarkReversed(reversal.ID) }); err == nil {
		t.Error("MarkReversed of a reversal not posted was accepted")
	}
	capture := transfer(epoch, ledger.Leg{From: a, To: b, Amount: 5})
	capture.CapturesHoldID = h.ID
	if err := s.Apply(ctx, ledger.Lock{AccountIDs: []string{a, b}, HoldID: h.ID}, func(tx ledger.Tx) error { return post(tx, capture) }); err == nil {
		t.Error("a capture whose hold was not saved as captured was accepted")
	}

	// Both halves: accepted, and read back from either side.
	if err := s.Apply(ctx, lock, func(tx ledger.Tx) error {
		if err := post(tx, reversal); err != nil {
			return err
		}
		if err := tx.MarkReversed(reversal.ID); err != nil {
			return err
		}
		if got, _ := tx.Transfer(); got.ReversedByID != reversal.ID {
			t.Errorf("after MarkReversed, Transfer().ReversedByID = %q", got.ReversedByID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTransfer(ctx, original.ID); err != nil || got.ReversedByID != reversal.ID {
		t.Errorf("GetTransfer(original) = %+v, %v; want it reversed by %s", got, err, reversal.ID)
	}
	if err := s.Apply(ctx, ledger.Lock{AccountIDs: []string{a, b}, HoldID: h.ID}, func(tx ledger.Tx) error {
		held, _ := tx.Hold()
		held.State, held.CapturedAmount, held.CaptureTransferID, held.UpdatedAt = ledger.HoldCaptured, 5, capture.ID, epoch.Add(time.Second)
		if err := tx.SaveHold(held); err != nil { // before the transfer: the key is deferred
			return err
		}
		return post(tx, capture)
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTransfer(ctx, capture.ID); err != nil || got.CapturesHoldID != h.ID {
		t.Errorf("GetTransfer(capture) = %+v, %v; want it to capture %s", got, err, h.ID)
	}
	if got, err := s.GetHold(ctx, h.ID); err != nil || got.CaptureTransferID != capture.ID || got.State != ledger.HoldCaptured {
		t.Errorf("GetHold = %+v, %v; want it captured by %s", got, err, capture.ID)
	}
}

// A transfer's id is its own: posting another with the same id is
// AlreadyExists, as on the memory backend, and so is an account's.
func TestDuplicateIDs(t *testing.T) {
	t.Parallel()
	s := postgres.New(newPool(t))
	ctx := t.Context()
	acc := account(ledger.PolicyUnrestricted, 0)
	ab := open(t, s, acc, account(ledger.PolicyUnrestricted, 0))
	if err := s.CreateAccount(ctx, acc); !errors.As(err, new(*domainerr.AlreadyExistsError)) {
		t.Errorf("CreateAccount of an existing id = %v, want AlreadyExists", err)
	}
	tr := move(t, s, epoch, ledger.Leg{From: ab[0], To: ab[1], Amount: 1})
	err := s.Apply(ctx, lockOf(tr), func(tx ledger.Tx) error { return post(tx, tr) })
	if !errors.As(err, new(*domainerr.AlreadyExistsError)) {
		t.Errorf("posting an existing transfer id = %v, want AlreadyExists", err)
	}
}

// Inside the gateway, a request's writes join the transaction its
// idempotency record commits in: Apply works in a savepoint of it, reads see
// it, and nothing of it survives the request's rollback.
func TestApplyJoinsTheRequestTransaction(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := postgres.New(pool)
	ctx := t.Context()
	ab := open(t, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyNonNegative, 0))

	outer, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Rollback(context.Background())
	reqCtx := pgtx.WithTx(ctx, outer)

	extra := account(ledger.PolicyNonNegative, 0)
	if err := s.CreateAccount(reqCtx, extra); err != nil {
		t.Fatal(err)
	}
	tr := transfer(epoch, ledger.Leg{From: ab[0], To: ab[1], Amount: 30}, ledger.Leg{From: ab[1], To: extra.ID, Amount: 10})
	if err := s.Apply(reqCtx, ledger.Lock{AccountIDs: []string{ab[0], ab[1], extra.ID}}, func(tx ledger.Tx) error { return post(tx, tr) }); err != nil {
		t.Fatal(err)
	}
	// A failing Apply inside the request undoes only its own writes.
	refused := errors.New("refused")
	if err := s.Apply(reqCtx, ledger.Lock{AccountIDs: ab}, func(tx ledger.Tx) error {
		if err := post(tx, transfer(epoch, ledger.Leg{From: ab[0], To: ab[1], Amount: 1})); err != nil {
			return err
		}
		return refused
	}); err != refused {
		t.Fatalf("Apply = %v, want change's error", err)
	}

	got, _, err := s.GetAccount(reqCtx, ab[1], epoch)
	if err != nil || got.Posted != 20 || got.EntryCount != 2 {
		t.Errorf("inside the request, GetAccount = %+v, %v; want posted 20 after 2 entries", got, err)
	}
	if _, err := s.GetTransfer(reqCtx, tr.ID); err != nil {
		t.Errorf("inside the request, GetTransfer: %v", err)
	}
	if got, _, err := s.GetAccount(ctx, ab[1], epoch); err != nil || got.Posted != 0 {
		t.Errorf("outside the request before it commits, GetAccount = %+v, %v; want posted 0", got, err)
	}

	if err := outer.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetAccount(ctx, extra.ID, epoch); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("after the rollback, GetAccount of the account it opened = %v, want NotFound", err)
	}
	if _, err := s.GetTransfer(ctx, tr.ID); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("after the rollback, GetTransfer = %v, want NotFound", err)
	}
	if got, _, err := s.GetAccount(ctx, ab[1], epoch); err != nil || got.Posted != 0 || got.EntryCount != 0 {
		t.Errorf("after the rollback, GetAccount = %+v, %v; want it untouched", got, err)
	}
}

// Reads: times in UTC to the microsecond, legs in their order, entries by
// Seq, balances at an instant, pages by id.
func TestReads(t *testing.T) {
	t.Parallel()
	s := postgres.New(newPool(t))
	ctx := t.Context()
	customer := "cus_" + strings.Repeat("0", 25) + "1"
	a1, a2, a3 := account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyNonNegative, 25), account(ledger.PolicyNonNegative, 0)
	a2.CustomerID, a3.CustomerID = customer, customer
	a1.CreatedAt = time.Date(2025, 3, 14, 16, 9, 26, 999999999, time.FixedZone("CET", 3600))
	a1.UpdatedAt = a1.CreatedAt
	ab := open(t, s, a1, a2, a3)

	got, held, err := s.GetAccount(ctx, a1.ID, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 3, 14, 15, 9, 26, 999999000, time.UTC); got.CreatedAt != want || got.UpdatedAt != want || held != 0 {
		t.Errorf("GetAccount = %+v with %d held; want times %v", got, held, want)
	}
	if got.CustomerID != "" || got.Policy != ledger.PolicyUnrestricted || got.State != ledger.AccountOpen {
		t.Errorf("GetAccount = %+v", got)
	}

	t1 := epoch
	t2 := epoch.Add(time.Minute)
	first := move(t, s, t1, ledger.Leg{From: ab[0], To: ab[1], Amount: 10}, ledger.Leg{From: ab[1], To: ab[2], Amount: 4}, ledger.Leg{From: ab[0], To: ab[2], Amount: 1})
	second := move(t, s, t2, ledger.Leg{From: ab[1], To: ab[0], Amount: 30})

	gotT, err := s.GetTransfer(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gotT.Legs) != fmt.Sprint(first.Legs) || gotT.PostedAt != t1.Truncate(time.Microsecond) || gotT.PostedAt.Location() != time.UTC {
		t.Errorf("GetTransfer = %+v, want legs %v posted at %v", gotT, first.Legs, t1.Truncate(time.Microsecond))
	}

	entries, err := s.ListEntries(ctx, ledger.EntryQuery{AccountID: ab[1], Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var amounts []int64
	for i, e := range entries {
		amounts = append(amounts, e.Amount)
		if e.Seq != int64(i+1) || e.AccountID != ab[1] {
			t.Errorf("entry %d = %+v", i, e)
		}
	}
	if fmt.Sprint(amounts) != "[10 -4 -30]" || entries[2].BalanceAfter != -24 {
		t.Errorf("entries of %s = %+v, want amounts 10, -4, -30 ending at -24", ab[1], entries)
	}
	if page, err := s.ListEntries(ctx, ledger.EntryQuery{AccountID: ab[1], AfterSeq: 1, Limit: 1}); err != nil || len(page) != 1 || page[0].Seq != 2 {
		t.Errorf("ListEntries after 1, limit 1 = %+v, %v", page, err)
	}
	if page, err := s.ListEntries(ctx, ledger.EntryQuery{AccountID: ab[1], AfterSeq: 3, Limit: 10}); err != nil || page != nil {
		t.Errorf("ListEntries past the last = %+v, %v; want none", page, err)
	}
	if _, err := s.ListEntries(ctx, ledger.EntryQuery{AccountID: "lac_00000000000000000000000001", Limit: 10}); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("ListEntries of a missing account = %v, want NotFound", err)
	}

	for _, tc := range []struct {
		at   time.Time
		want int64
	}{{t1.Add(-time.Microsecond), 0}, {t1, 6}, {t2.Truncate(time.Microsecond).Add(-time.Microsecond), 6}, {t2, -24}} {
		if got, err := s.BalanceAt(ctx, ab[1], tc.at.Truncate(time.Microsecond)); err != nil || got != tc.want {
			t.Errorf("BalanceAt(%v) = %d, %v; want %d", tc.at, got, err, tc.want)
		}
	}
	if _, err := s.BalanceAt(ctx, "lac_00000000000000000000000001", t2); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("BalanceAt of a missing account = %v, want NotFound", err)
	}

	list, err := s.ListAccounts(ctx, ledger.AccountQuery{CustomerID: customer, Limit: 10}, epoch)
	if err != nil || len(list) != 2 || list[0].ID >= list[1].ID || list[0].CustomerID != customer {
		t.Errorf("ListAccounts of a customer = %+v, %v", list, err)
	}
	if list, err := s.ListAccounts(ctx, ledger.AccountQuery{AfterID: min(ab[0], ab[1], ab[2]), Limit: 1}, epoch); err != nil || len(list) != 1 {
		t.Errorf("ListAccounts after the first, limit 1 = %+v, %v", list, err)
	}

	byAccount, err := s.ListTransfers(ctx, ledger.TransferQuery{AccountID: ab[2], Limit: 10})
	if err != nil || len(byAccount) != 1 || byAccount[0].ID != first.ID {
		t.Errorf("ListTransfers of %s = %+v, %v; want only %s", ab[2], byAccount, err, first.ID)
	}
	all, err := s.ListTransfers(ctx, ledger.TransferQuery{AccountID: ab[0], Limit: 10})
	if err != nil || len(all) != 2 || all[0].ID != first.ID || all[1].ID != second.ID {
		t.Errorf("ListTransfers of %s = %+v, %v; want both, in id order", ab[0], all, err)
	}
	if page, err := s.ListTransfers(ctx, ledger.TransferQuery{AccountID: ab[0], AfterID: first.ID, Limit: 1}); err != nil || len(page) != 1 || page[0].ID != second.ID {
		t.Errorf("ListTransfers after the first = %+v, %v", page, err)
	}
}

// closedPort returns a local TCP port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// A database that cannot be reached makes every method return a
// *domainerr.UnavailableError, which the gateway turns into a retryable
// Unavailable, without the cause reaching the caller.
func TestUnavailableWhenTheDatabaseIsUnreachable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=5", closedPort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := postgres.New(pool)
	ctx := t.Context()
	id := "lac_00000000000000000000000001"
	calls := map[string]func() error{
		"CreateAccount": func() error { return s.CreateAccount(ctx, account(ledger.PolicyUnrestricted, 0)) },
		"GetAccount":    func() error { _, _, err := s.GetAccount(ctx, id, epoch); return err },
		"ListAccounts":  func() error { _, err := s.ListAccounts(ctx, ledger.AccountQuery{Limit: 10}, epoch); return err },
		"GetTransfer":   func() error { _, err := s.GetTransfer(ctx, "trf_00000000000000000000000001"); return err },
		"ListTransfers": func() error { _, err := s.ListTransfers(ctx, ledger.TransferQuery{Limit: 10}); return err },
		"GetHold":       func() error { _, err := s.GetHold(ctx, "hld_00000000000000000000000001"); return err },
		"ListEntries":   func() error { _, err := s.ListEntries(ctx, ledger.EntryQuery{AccountID: id, Limit: 10}); return err },
		"BalanceAt":     func() error { _, err := s.BalanceAt(ctx, id, epoch); return err },
		"Apply": func() error {
			return s.Apply(ctx, ledger.Lock{AccountIDs: []string{id}}, func(ledger.Tx) error {
				t.Error("Apply called change without a database")
				return nil
			})
		},
		"Ping": func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		err := call()
		var unavailable *domainerr.UnavailableError
		if !errors.As(err, &unavailable) {
			t.Errorf("%s = %v, want *domainerr.UnavailableError", name, err)
			continue
		}
		if unavailable.Dependency != "database" || unavailable.Err == nil {
			t.Errorf("%s: Unavailable{Dependency: %q, Err: %v}, want the database and the cause", name, unavailable.Dependency, unavailable.Err)
		}
		if strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: message %q shows the cause; it reaches callers", name, err)
		}
	}
}

// The caller giving up is not the database being unavailable.
func TestCanceledContextIsNotUnavailable(t *testing.T) {
	t.Parallel()
	s := postgres.New(newPool(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := s.GetAccount(ctx, "lac_00000000000000000000000001", epoch)
	if !errors.Is(err, context.Canceled) || errors.As(err, new(*domainerr.UnavailableError)) {
		t.Errorf("GetAccount with a canceled context = %v, want context.Canceled", err)
	}
	err = s.Apply(ctx, ledger.Lock{}, func(ledger.Tx) error { return nil })
	if !errors.Is(err, context.Canceled) || errors.As(err, new(*domainerr.UnavailableError)) {
		t.Errorf("Apply with a canceled context = %v, want context.Canceled", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	if err := postgres.New(newPool(t)).Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// BenchmarkMoveMoney measures one transfer of one leg between two
// accounts, the hot path: lock, sum the payer's holds, post, commit.
func BenchmarkMoveMoney(b *testing.B) {
	s := postgres.New(newPool(b))
	ab := open(b, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyNonNegative, 0))
	ctx := context.Background()
	for b.Loop() {
		tr := transfer(epoch, ledger.Leg{From: ab[0], To: ab[1], Amount: 1})
		if err := s.Apply(ctx, lockOf(tr), func(tx ledger.Tx) error {
			if _, err := tx.HeldAt(ab[0], epoch); err != nil {
				return err
			}
			return post(tx, tr)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// Migration 00002's Down brings back 00001's check at COMMIT, which lets a
// transfer be balanced by a later statement of its transaction, and its Up
// applied again checks every statement; the ledger posts either way.
func TestBalancedPerStatementMigrationDownAndUpAgain(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := postgres.New(pool)
	ctx := t.Context()
	up, down := pgtest.MigrationSections(t, postgres.Migrations(), "00002_balanced_per_statement.sql")
	ab := open(t, s, account(ledger.PolicyUnrestricted, 0), account(ledger.PolicyNonNegative, 0))
	seq := 0
	// inSteps writes a transfer of 1 from ab[0] to ab[1] one row per
	// statement, in one transaction.
	inSteps := func() error {
		seq++
		id := fmt.Sprintf("trf_%026d", seq)
		return inTx(ctx, pool,
			`INSERT INTO ledger.transfers (id, currency, posted_at) VALUES ('`+id+`', 'USD', now())`,
			fmt.Sprintf(`INSERT INTO ledger.transfer_legs (transfer_id, position, currency, from_account_id, to_account_id, amount)
				VALUES ('%s', 0, 'USD', '%s', '%s', 1)`, id, ab[0], ab[1]),
			fmt.Sprintf(`INSERT INTO ledger.entries (id, account_id, transfer_id, seq, amount, balance_after, posted_at)
				VALUES ('ent_A%025d', '%s', '%s', %d, -1, %d, now()), ('ent_B%025d', '%s', '%s', %d, 1, %d, now())`,
				seq, ab[0], id, seq, -seq, seq, ab[1], id, seq, seq),
			fmt.Sprintf(`UPDATE ledger.accounts SET posted = %d, entry_count = %d WHERE id = '%s'`, -seq, seq, ab[0]),
			fmt.Sprintf(`UPDATE ledger.accounts SET posted = %d, entry_count = %d WHERE id = '%s'`, seq, seq, ab[1]))
	}
	postOne := func(when string) {
		t.Helper()
		seq++
		tr := transfer(epoch, ledger.Leg{From: ab[0], To: ab[1], Amount: 1})
		if err := s.Apply(ctx, lockOf(tr), func(tx ledger.Tx) error { return post(tx, tr) }); err != nil {
			t.Fatalf("%s, posting a transfer: %v", when, err)
		}
	}

	pgtest.WantViolation(t, inSteps(), "23514", "transfers_have_legs")
	seq--
	if _, err := pool.Exec(ctx, down); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if err := inSteps(); err != nil {
		t.Fatalf("after Down, a transfer balanced at COMMIT was refused: %v", err)
	}
	postOne("after Down")
	if _, err := pool.Exec(ctx, up); err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	pgtest.WantViolation(t, inSteps(), "23514", "transfers_have_legs")
	seq--
	postOne("after Up again")
}
