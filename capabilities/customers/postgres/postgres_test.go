package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/customers/customerstest"
	"plinth.dev/plinth/capabilities/customers/postgres"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/seal"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newPool returns a pool over a new database with the customers schema
// migrated.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return pgtest.NewPool(t, 8, pgtest.Schema{Name: "customers", Migrations: postgres.Migrations()})
}

func TestConformance(t *testing.T) {
	customerstest.Run(t, func(t *testing.T) customers.Store {
		return postgres.New(newPool(t), newSealer(t))
	})
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("customers", "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if b.Migrations == nil {
		t.Fatal("the postgres backend registers no migrations")
	}
	// Open takes the gateway's pool and does not touch the database.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sealer := newSealer(t)
	store, err := b.Open(t.Context(), registry.Env{
		Postgres: func(context.Context) (*pgxpool.Pool, error) { return pool, nil },
		Sealer:   func(context.Context) (*seal.Sealer, error) { return sealer, nil },
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := store.(customers.Store); !ok {
		t.Fatalf("Open returned a %T, not a customers.Store", store)
	}
	if _, err := b.Open(t.Context(), registry.Env{}); err == nil {
		t.Error("Open without a pool succeeded")
	}
}

func customer(id, email string) customers.Customer {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	return customers.Customer{
		ID:        id,
		State:     customers.StatePending,
		Email:     email,
		EmailKey:  customers.CaseInsensitiveEmailKey(email),
		Profile:   customers.Profile{Name: "Ada Lovelace", Phone: "+442071234567"},
		CreatedAt: at,
		UpdatedAt: at,
	}
}

const (
	id1 = "cus_01JQ0000000000000000000001"
	id2 = "cus_01JQ0000000000000000000002"
)

// The schema itself refuses rows that break the domain's invariants, so
// that a bug in any writer (or a hand-run fix) cannot store them.
func TestSchemaRefusesWhatTheDomainForbids(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	if err := postgres.New(pool, newSealer(t)).Create(ctx, customer(id1, "ada@example.com")); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO customers.customers (id, state, email_lookup, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`
	now := time.Now()
	for _, tc := range []struct {
		name             string
		sql              string
		args             []any
		code, constraint string
	}{
		{"unknown state", insert, []any{id2, "frozen", "b@example.com", now, now}, "23514", "customers_state_known"},
		{"unspecified state", insert, []any{id2, "unspecified", "b@example.com", now, now}, "23514", "customers_state_known"},
		{"malformed id", insert, []any{"cus_123", "pending", "b@example.com", now, now}, "23514", "customers_id_format"},
		{"id of another resource", insert, []any{"acc_01JQ0000000000000000000002", "pending", "b@example.com", now, now}, "23514", "customers_id_format"},
		{"updated before created", insert, []any{id2, "pending", "b@example.com", now, now.Add(-time.Second)}, "23514", "customers_updated_after_created"},
		{"empty email lookup", insert, []any{id2, "pending", "", now, now}, "23514", "customers_email_lookup_not_empty"},
		{"email lookup taken", insert, []any{id2, "pending", "ada@example.com", now, now}, "23505", "customers_email_lookup_key"},
		{"PII of no customer", `INSERT INTO customers.customer_pii (customer_id, name, email) VALUES ($1, '\x00', '\x00')`,
			[]any{id2}, "23503", "customer_pii_customer_fkey"},
		{"second PII row", `INSERT INTO customers.customer_pii (customer_id, name, email) VALUES ($1, '\x00', '\x00')`,
			[]any{id1}, "23505", "customer_pii_pkey"},
		{"no name", `UPDATE customers.customer_pii SET name = NULL`, nil, "23502", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql, tc.args...)
			pgtest.WantViolation(t, err, tc.code, tc.constraint)
		})
	}

	// Deleting a customer takes its PII with it.
	if _, err := pool.Exec(ctx, `DELETE FROM customers.customers WHERE id = $1`, id1); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM customers.customer_pii`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d PII rows outlived their customer", left)
	}
}

// Ids compare byte by byte, as Go compares strings, whatever the locale of
// the database: listings page in the same order as the memory backend's.
func TestIDsCompareBytewise(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	var collation string
	if err := pool.QueryRow(t.Context(), `
SELECT co.collname FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attrelid = 'customers.customers'::regclass AND a.attname = 'id'`).Scan(&collation); err != nil {
		t.Fatal(err)
	}
	if collation != "C" {
		t.Errorf("customers.id has collation %q, want \"C\"", collation)
	}
}

// Every PII value goes through the field codec: today each stored value
// starts with the "not sealed" format byte, and an optional field not given
// is NULL. Issue 4 changes the byte and what follows, not this layout.
func TestPIIColumnsHoldCodecOutput(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	full := customer(id1, "Ada@Example.com")
	full.Profile = customers.Profile{
		Name: "Ada Lovelace", Phone: "+442071234567", DateOfBirth: "1815-12-10", TaxID: "AB123456C",
		Address: &customers.Address{Line1: "12 St James's Square", City: "London", CountryCode: "GB"},
	}
	bare := customer(id2, "grace@example.com")
	bare.Profile = customers.Profile{Name: "Grace Hopper"}
	store := postgres.New(pool, newSealer(t))
	for _, c := range []customers.Customer{full, bare} {
		if err := store.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	columns := []string{"name", "email", "phone", "date_of_birth", "address", "tax_id"}
	for _, tc := range []struct {
		id      string
		notNull map[string]bool
	}{
		{id1, map[string]bool{"name": true, "email": true, "phone": true, "date_of_birth": true, "address": true, "tax_id": true}},
		{id2, map[string]bool{"name": true, "email": true}},
	} {
		for _, column := range columns {
			var value []byte
			if err := pool.QueryRow(ctx, `SELECT `+column+` FROM customers.customer_pii WHERE customer_id = $1`, tc.id).Scan(&value); err != nil {
				t.Fatal(err)
			}
			switch {
			case !tc.notNull[column] && value != nil:
				t.Errorf("%s.%s holds %d bytes, want NULL for a field not given", tc.id, column, len(value))
			case tc.notNull[column] && (len(value) < 2 || value[0] != 0x01):
				t.Errorf("%s.%s = %d bytes starting %x, want a value sealed by internal/seal (format 0x01)", tc.id, column, len(value), value[:min(len(value), 1)])
			}
			for _, plain := range []string{"Ada", "Lovelace", "example.com", "+442071234567", "1815-12-10", "AB123456C", "James", "Grace"} {
				if bytes.Contains(value, []byte(plain)) {
					t.Errorf("%s.%s holds %q in the clear", tc.id, column, plain)
				}
			}
		}
	}
	// The lookup column holds the key it was given, as it was given.
	var lookup string
	if err := pool.QueryRow(ctx, `SELECT email_lookup FROM customers.customers WHERE id = $1`, id1).Scan(&lookup); err != nil {
		t.Fatal(err)
	}
	if lookup != full.EmailKey {
		t.Errorf("email_lookup = %q, want the EmailKey %q", lookup, full.EmailKey)
	}

	// A sealed value copied to another row does not open there: it is
	// bound to its place.
	if _, err := pool.Exec(ctx, `UPDATE customers.customer_pii SET name = (SELECT name FROM customers.customer_pii WHERE customer_id = $1) WHERE customer_id = $2`, id1, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, id2); err == nil || strings.Contains(err.Error(), "Ada") {
		t.Errorf("Get of a row holding another row's sealed name = %v, want an error that repeats nothing", err)
	}
}

// The email's blind index is keyed: equal regardless of case, never the
// email, and not what another keyring makes of it.
func TestEmailKeyIsAKeyedBlindIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := postgres.New(newPool(t), newSealer(t))
	a, err := store.EmailKey(ctx, "Ada@Example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := store.EmailKey(ctx, "ada@example.COM")
	c, _ := store.EmailKey(ctx, "grace@example.com")
	other, _ := postgres.New(newPool(t), newSealer(t)).EmailKey(ctx, "ada@example.com")
	switch {
	case a != b:
		t.Errorf("keys of one email in two cases differ: %s, %s", a, b)
	case a == c:
		t.Error("two emails share a key")
	case strings.Contains(strings.ToLower(a), "ada"):
		t.Errorf("key %s holds the email", a)
	case a == other:
		t.Error("two keyrings make the same key: the index is not keyed")
	}
}

// A stored value the backend cannot open is an error that names where it
// is, and never repeats what is stored.
func TestUnreadablePIIIsAnErrorWithoutTheValue(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	store := postgres.New(pool, newSealer(t))
	if err := store.Create(ctx, customer(id1, "ada@example.com")); err != nil {
		t.Fatal(err)
	}
	// Format 0x07 followed by what would be a phone number.
	if _, err := pool.Exec(ctx, `UPDATE customers.customer_pii SET phone = '\x072b3434373030393030313233' WHERE customer_id = $1`, id1); err != nil {
		t.Fatal(err)
	}
	_, err := store.Get(ctx, id1)
	if err == nil {
		t.Fatal("Get of an unreadable customer succeeded")
	}
	if !strings.Contains(err.Error(), "phone") || !strings.Contains(err.Error(), id1) {
		t.Errorf("error %q does not say which value of which customer", err)
	}
	if strings.Contains(err.Error(), "+447009001234") || strings.Contains(err.Error(), "2b3434") {
		t.Errorf("error %q repeats the stored value", err)
	}
	if _, ok := domainerr.KindOf(err); ok {
		t.Errorf("error %v has a domain kind; it is an internal failure", err)
	}
}

// A customer whose PII row is missing is an error, never a customer that
// silently drops out of reads and listings.
func TestCustomerWithoutPIIIsAnError(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	store := postgres.New(pool, newSealer(t))
	for _, c := range []customers.Customer{customer(id1, "ada@example.com"), customer(id2, "grace@example.com")} {
		if err := store.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `DELETE FROM customers.customer_pii WHERE customer_id = $1`, id1); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, id1); err == nil || errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("Get = %v, want an error that is not NotFound", err)
	}
	if _, err := store.List(ctx, customers.ListQuery{Limit: 10}); err == nil {
		t.Error("List succeeded over a customer without PII")
	}
	if _, err := store.Update(ctx, id1, func(*customers.Customer) error { return nil }); err == nil {
		t.Error("Update of a customer without PII succeeded")
	}
}

func TestCreateWithAnExistingID(t *testing.T) {
	t.Parallel()
	store := postgres.New(newPool(t), newSealer(t))
	ctx := t.Context()
	if err := store.Create(ctx, customer(id1, "ada@example.com")); err != nil {
		t.Fatal(err)
	}
	err := store.Create(ctx, customer(id1, "grace@example.com"))
	var exists *domainerr.AlreadyExistsError
	if !errors.As(err, &exists) || exists.ID != id1 {
		t.Fatalf("Create with an existing id = %v, want *domainerr.AlreadyExistsError for %s", err, id1)
	}
	// When the email clashes too, the email is what Create reports, as the
	// memory backend does.
	err = store.Create(ctx, customer(id1, "ADA@example.com"))
	if !errors.As(err, new(*customers.EmailTakenError)) {
		t.Fatalf("Create with an existing id and email = %v, want *customers.EmailTakenError", err)
	}
	// Nothing of the refused customers was kept.
	if _, err := store.GetByEmailKey(ctx, "grace@example.com"); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("GetByEmailKey of the refused customer's email = %v, want NotFound", err)
	}
}

func TestUpdateRefusesToChangeTheID(t *testing.T) {
	t.Parallel()
	store := postgres.New(newPool(t), newSealer(t))
	ctx := t.Context()
	want := customer(id1, "ada@example.com")
	if err := store.Create(ctx, want); err != nil {
		t.Fatal(err)
	}
	_, err := store.Update(ctx, id1, func(c *customers.Customer) error {
		c.ID = id2
		c.StateReason = "moved"
		return nil
	})
	if err == nil {
		t.Fatal("Update that changed the id succeeded")
	}
	got, err := store.Get(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	if got.StateReason != "" {
		t.Errorf("a refused Update stored state_reason %q", got.StateReason)
	}
	if _, err := store.Get(ctx, id2); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("Get(%s) = %v, want NotFound", id2, err)
	}
}

// Times come back exactly as the service made them (microseconds, UTC),
// and finer ones are truncated, not rounded, on the way in.
func TestTimesRoundTrip(t *testing.T) {
	t.Parallel()
	store := postgres.New(newPool(t), newSealer(t))
	ctx := t.Context()
	c := customer(id1, "ada@example.com")
	paris := time.FixedZone("CET", 3600)
	c.CreatedAt = time.Date(2025, 3, 14, 16, 9, 26, 999999999, paris)
	c.UpdatedAt = c.CreatedAt
	if err := store.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 3, 14, 15, 9, 26, 999999000, time.UTC)
	if got.CreatedAt != want || got.UpdatedAt != want {
		t.Errorf("times = %v, %v; want %v for both, in UTC", got.CreatedAt, got.UpdatedAt, want)
	}
	updated, err := store.Update(ctx, id1, func(c *customers.Customer) error {
		c.UpdatedAt = c.UpdatedAt.Add(1500 * time.Nanosecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = store.Get(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	if updated.UpdatedAt != got.UpdatedAt || got.UpdatedAt != want.Add(time.Microsecond) {
		t.Errorf("Update returned %v, Get %v; want %v for both", updated.UpdatedAt, got.UpdatedAt, want.Add(time.Microsecond))
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
	store := postgres.New(pool, newSealer(t))
	ctx := t.Context()

	calls := map[string]func() error{
		"Create": func() error { return store.Create(ctx, customer(id1, "ada@example.com")) },
		"Get":    func() error { _, err := store.Get(ctx, id1); return err },
		"GetByEmailKey": func() error {
			_, err := store.GetByEmailKey(ctx, "ada@example.com")
			return err
		},
		"List": func() error { _, err := store.List(ctx, customers.ListQuery{Limit: 10}); return err },
		"Update": func() error {
			_, err := store.Update(ctx, id1, func(*customers.Customer) error { return nil })
			return err
		},
		"Ping": func() error { return store.Ping(ctx) },
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
	store := postgres.New(newPool(t), newSealer(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := store.Get(ctx, id1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context = %v, want context.Canceled", err)
	}
	if errors.As(err, new(*domainerr.UnavailableError)) {
		t.Errorf("Get with a canceled context = %v, which says the database is unavailable", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	if err := postgres.New(newPool(t), newSealer(t)).Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// newSealer returns a sealer over a local keyring whose keys live in
// memory: enough for tests, which never read back after a restart.
func newSealer(t testing.TB) *seal.Sealer {
	t.Helper()
	kr, err := keyring.NewLocal("")
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(kr)
}
