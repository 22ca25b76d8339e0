package idempotency_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/gateway/idempotency"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/migrate"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/pgtx"
	"plinth.dev/plinth/internal/seal"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func claim(caller, key string, request string) idempotency.Claim {
	return idempotency.Claim{Caller: caller, Key: key, Procedure: "/p.v1.S/M",
		RequestHash: sha256.Sum256([]byte(request)), Now: t0}
}

// testStore holds the behaviour both stores share.
func testStore(t *testing.T, store idempotency.Store) {
	ctx := context.Background()
	c := claim("alice", "k1", "request one")

	rec, att, err := store.Begin(ctx, c)
	if err != nil || rec != nil || att == nil {
		t.Fatalf("first Begin = %v, %v, %v; want an attempt", rec, att, err)
	}
	if _, _, err := store.Begin(ctx, c); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("Begin while the first runs = %v, want ErrInProgress", err)
	}
	// Another caller's key of the same name is another key.
	rec, other, err := store.Begin(ctx, claim("bob", "k1", "request one"))
	if err != nil || rec != nil || other == nil {
		t.Fatalf("another caller's Begin = %v, %v, %v; want an attempt", rec, other, err)
	}
	other.Abandon()

	want := idempotency.Record{Procedure: c.Procedure, RequestHash: c.RequestHash, Response: []byte{1, 2, 3}, CreatedAt: t0}
	if err := att.Finish(ctx, want, true, nil); err != nil {
		t.Fatal(err)
	}
	att.Abandon() // a no-op after Finish
	rec, att2, err := store.Begin(ctx, c)
	if err != nil || att2 != nil || rec == nil {
		t.Fatalf("Begin after Finish = %v, %v, %v; want the record", rec, att2, err)
	}
	if rec.RequestHash != want.RequestHash || string(rec.Response) != string(want.Response) || rec.Code != 0 || !rec.CreatedAt.Equal(t0) {
		t.Errorf("record = %+v, want %+v", rec, want)
	}

	// A refusal is recorded with its code, message and details.
	r := claim("alice", "k2", "request two")
	_, att, err = store.Begin(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	refusal := idempotency.Record{Procedure: r.Procedure, RequestHash: r.RequestHash, Code: 9, Message: "no", Details: [][]byte{{7}, {8, 9}}, CreatedAt: t0.Add(time.Hour)}
	if err := att.Finish(ctx, refusal, false, nil); err != nil {
		t.Fatal(err)
	}
	rec, _, err = store.Begin(ctx, r)
	if err != nil || rec == nil || rec.Code != 9 || rec.Message != "no" || len(rec.Details) != 2 || rec.Details[1][1] != 9 || rec.Response != nil {
		t.Fatalf("refusal record = %+v, %v", rec, err)
	}

	// An abandoned claim leaves nothing: the next Begin runs the call.
	a := claim("alice", "k3", "request three")
	_, att, _ = store.Begin(ctx, a)
	att.Abandon()
	if rec, att, err := store.Begin(ctx, a); err != nil || rec != nil || att == nil {
		t.Fatalf("Begin after Abandon = %v, %v, %v; want an attempt", rec, att, err)
	} else {
		att.Abandon()
	}

	// Expiry: k1 (t0) goes, k2 (t0+1h) stays.
	n, err := store.DeleteExpired(ctx, t0.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if rec, att, _ := store.Begin(ctx, c); rec != nil || att == nil {
		t.Fatalf("an expired key should be free again")
	} else {
		att.Abandon()
	}
	if rec, _, _ := store.Begin(ctx, r); rec == nil {
		t.Fatalf("an unexpired record was deleted")
	}
}

func TestMemoryStore(t *testing.T) {
	testStore(t, idempotency.NewMemoryStore())
}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrate.Up(context.Background(), pool, idempotency.Schema, idempotency.Migrations, nil); err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestPostgresStore(t *testing.T) {
	t.Parallel()
	testStore(t, idempotency.NewPostgresStore(newPool(t), newSealer(t)))
}

// TestPostgresRecordCommitsWithTheEffect proves that a backend's writes in
// the attempt's context commit with the record, are undone (record kept)
// when the call was refused, and vanish with an abandoned attempt.
func TestPostgresRecordCommitsWithTheEffect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE effects (key text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	store := idempotency.NewPostgresStore(pool, newSealer(t))
	effect := func(att idempotency.Attempt, key string) {
		t.Helper()
		// What a backend does: pgtx.Run joins the attempt's transaction.
		if err := pgtx.Run(att.Context(), pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, key)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Not visible outside before the attempt finishes.
		if exists(t, pool, key) {
			t.Fatalf("effect %s visible before the record committed", key)
		}
	}

	for _, tc := range []struct {
		key                    string
		finish, keep           bool
		wantEffect, wantRecord bool
	}{
		{key: "kept", finish: true, keep: true, wantEffect: true, wantRecord: true},
		{key: "refused", finish: true, keep: false, wantEffect: false, wantRecord: true},
		{key: "abandoned", finish: false, wantEffect: false, wantRecord: false},
	} {
		c := claim("alice", tc.key, tc.key)
		_, att, err := store.Begin(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		effect(att, tc.key)
		if tc.finish {
			code := uint32(0)
			var response []byte = []byte{}
			if !tc.keep {
				code, response = 9, nil
			}
			if err := att.Finish(ctx, idempotency.Record{Procedure: c.Procedure, RequestHash: c.RequestHash, Code: code, Response: response, CreatedAt: t0}, tc.keep, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			att.Abandon()
		}
		if got := exists(t, pool, tc.key); got != tc.wantEffect {
			t.Errorf("%s: effect present = %v, want %v", tc.key, got, tc.wantEffect)
		}
		rec, att, err := store.Begin(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if (rec != nil) != tc.wantRecord {
			t.Errorf("%s: record present = %v, want %v", tc.key, rec != nil, tc.wantRecord)
		}
		if att != nil {
			att.Abandon()
		}
	}
}

func exists(t *testing.T, pool *pgxpool.Pool, key string) bool {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM effects WHERE key = $1`, key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func newSealer(t testing.TB) *seal.Sealer {
	t.Helper()
	kr, err := keyring.NewLocal("")
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(kr)
}

// TestPostgresSealsSensitiveResponses proves that a recorded response that
// can hold sensitive data is stored sealed, and replays in the clear.
func TestPostgresSealsSensitiveResponses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t)
	store := idempotency.NewPostgresStore(pool, newSealer(t))
	c := claim("alice", "pii-1", "sign up")
	_, att, err := store.Begin(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Ada Lovelace <ada@example.com>")
	if err := att.Finish(ctx, idempotency.Record{Procedure: c.Procedure, RequestHash: c.RequestHash, Response: body, Class: keyring.PII, CreatedAt: t0}, true, nil); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	var class string
	if err := pool.QueryRow(ctx, `SELECT response, response_class FROM idempotency.records WHERE key = 'pii-1'`).Scan(&stored, &class); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("Ada")) || class != "pii" {
		t.Errorf("stored response %q (class %q): want it sealed with the pii key", stored, class)
	}
	rec, _, err := store.Begin(ctx, c)
	if err != nil || rec == nil || !bytes.Equal(rec.Response, body) {
		t.Fatalf("replayed record = %+v, %v; want the response opened", rec, err)
	}
}

// TestJanitorDeletesExpiredRecords runs the janitor over a memory store: a
// record older than the retention goes, a younger one stays.
func TestJanitorDeletesExpiredRecords(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	store := idempotency.NewMemoryStore()
	for key, at := range map[string]time.Time{"old": t0, "young": t0.Add(23 * time.Hour)} {
		c := claim("alice", key, key)
		_, att, err := store.Begin(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := att.Finish(ctx, idempotency.Record{Procedure: c.Procedure, RequestHash: c.RequestHash, Response: []byte{}, CreatedAt: at}, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	now := func() time.Time { return t0.Add(25 * time.Hour) }
	done := make(chan struct{})
	go func() {
		idempotency.RunJanitor(ctx, store, 24*time.Hour, time.Millisecond, now, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, att, _ := store.Begin(ctx, claim("alice", "old", "old"))
		if rec == nil {
			att.Abandon()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the janitor never deleted the expired record")
		}
		time.Sleep(time.Millisecond)
	}
	if rec, _, _ := store.Begin(ctx, claim("alice", "young", "young")); rec == nil {
		t.Error("the janitor deleted a record within the retention")
	}
	cancel()
	<-done
}
