package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/internal/pgtest"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// TestAuditRecordCommitsWithItsEffect: on PostgreSQL, the record of a call
// that changes state is written in the transaction of its effect. When the
// record cannot be written, the effect does not happen either (and the key
// is not used up); the chainer links records in the background, without
// anyone reading the chain.
func TestAuditRecordCommitsWithItsEffect(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_KEYRING_BACKEND=local",
		"PLINTH_KEYRING_KEY_FILE=" + filepath.Join(t.TempDir(), "keys.json"),
	}
	ctx := context.Background()
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	count := func(query string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	const signUps = `SELECT (SELECT count(*) FROM audit.records WHERE capability LIKE '%/SignUpCustomer' AND code = 'ok')
	                      + (SELECT count(*) FROM audit.pending WHERE capability LIKE '%/SignUpCustomer' AND code = 'ok')`

	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key))
	signUp := func(idempotencyKey, email string) error {
		req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Grace Hopper", Email: email})
		req.Header().Set(plinth.IdempotencyKeyHeader, idempotencyKey)
		_, err := client.SignUpCustomer(ctx, req)
		return err
	}
	if err := signUp("first", "grace@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := count(signUps); n != 1 {
		t.Fatalf("%d records of a successful SignUpCustomer, want 1", n)
	}
	// A refusal is recorded under its key in the same transaction, with
	// the effect undone: its audit record must survive that undoing.
	if err := signUp("taken", "grace@example.com"); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("SignUpCustomer of a taken email = %v, want already_exists", err)
	}
	const refusals = `SELECT (SELECT count(*) FROM audit.records WHERE capability LIKE '%/SignUpCustomer' AND code = 'already_exists')
	                       + (SELECT count(*) FROM audit.pending WHERE capability LIKE '%/SignUpCustomer' AND code = 'already_exists')`
	if n := count(refusals); n != 1 {
		t.Fatalf("%d records of the refused SignUpCustomer, want 1", n)
	}

	// Nobody reads the chain, and yet the record is chained soon.
	deadline := time.Now().Add(10 * time.Second)
	for count(`SELECT count(*) FROM audit.pending`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("records still wait to be chained 10s after the call")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Without a place to write records, a call that changes state fails,
	// and its effect and key are gone with its record.
	if _, err := db.Exec(ctx, `ALTER TABLE audit.pending RENAME TO pending_away`); err != nil {
		t.Fatal(err)
	}
	err = signUp("second", "hopper@example.com")
	if code := connect.CodeOf(err); code != connect.CodeInternal && code != connect.CodeUnavailable {
		t.Fatalf("SignUpCustomer with the audit unwritable = %v, want internal or unavailable", err)
	}
	if msg := err.Error(); strings.Contains(msg, "pending") || strings.Contains(msg, "audit.") {
		t.Errorf("the error leaks internals: %s", msg)
	}
	if n := count(`SELECT count(*) FROM customers.customers`); n != 1 {
		t.Fatalf("%d customers after a call whose record could not be written, want 1", n)
	}
	if n := count(`SELECT count(*) FROM idempotency.records WHERE key = 'second'`); n != 0 {
		t.Fatalf("the key of a call that did not happen was recorded")
	}
	if !strings.Contains(g.logs.String(), "could not be appended") {
		t.Errorf("the lost record of the failed call is not logged:\n%s", g.logs)
	}
	if _, err := db.Exec(ctx, `ALTER TABLE audit.pending_away RENAME TO pending`); err != nil {
		t.Fatal(err)
	}

	// The retry with the same key does the work, once.
	if err := signUp("second", "hopper@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := signUp("second", "hopper@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM customers.customers`); n != 2 {
		t.Fatalf("%d customers, want 2", n)
	}
	if n := count(signUps); n != 3 { // the first, the retry, and its replay
		t.Fatalf("%d records of successful SignUpCustomer calls, want 3", n)
	}
	audit := auditv1connect.NewAuditServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key))
	v, err := audit.VerifyAuditChain(ctx, connect.NewRequest(&auditv1.VerifyAuditChainRequest{}))
	if err != nil || !v.Msg.GetOk() {
		t.Fatalf("VerifyAuditChain = %v, %v", v, err)
	}
	if n := count(`SELECT count(*) FROM audit.records WHERE capability LIKE '%/SignUpCustomer' AND code = 'ok'`); n != 3 {
		t.Errorf("VerifyAuditChain found %d records of successful sign-ups chained, want 3", n)
	}
	g.stop(t)
	// A clean stop chains what the last calls added (VerifyAuditChain's
	// own record among them).
	if n := count(`SELECT count(*) FROM audit.pending`); n != 0 {
		t.Errorf("%d records left unchained after a clean stop", n)
	}
}
