package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/access/postgres"
	"plinth.dev/plinth/internal/migrate"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/pgtx"
	"plinth.dev/plinth/internal/testclock"
)

// The key cache against PostgreSQL: stores over pools of their own on one
// database, as gateways sharing it are, and changes made through another
// store, by hand, or behind the triggers' back (to tell an answer from the
// cache from one from the database).

// waitFor is how long a test waits for a notification to arrive, or the
// listener to come and go; it polls every pollEvery meanwhile.
const (
	waitFor   = 5 * time.Second
	pollEvery = 10 * time.Millisecond
)

// eventually polls cond until it holds, and fails the test if it does not
// within waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitFor)
		}
		time.Sleep(pollEvery)
	}
}

// sharedDatabase returns the URL of a new database with the access schema.
func sharedDatabase(t *testing.T) string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	if _, err := migrate.Up(t.Context(), openPool(t, url), "access", postgres.Migrations(), nil); err != nil {
		t.Fatal(err)
	}
	return url
}

// openPool returns a pool of its own over url, closed when the test ends.
func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// gateway returns a store over a pool of its own on the database at url,
// as a gateway has, closed when the test ends (before its pool).
func gateway(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s := postgres.New(openPool(t, url))
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// stopClock makes the cache of s see time stand still, so that its entries
// never expire: only an invalidation can empty it.
func stopClock(s *postgres.Store) {
	now := time.Now()
	postgres.SetCacheClock(s, func() time.Time { return now })
}

// waitListening starts the listener of s (the first lookup does) and waits
// until it listens, so that the cache is in use.
func waitListening(t *testing.T, s *postgres.Store) {
	t.Helper()
	if _, _, err := s.LookupKey(t.Context(), "ffffffff"); err == nil {
		t.Fatal("found a key of prefix ffffffff")
	}
	eventually(t, "the store listens", func() bool { return postgres.ListenerPID(s) != 0 })
}

// testKey is a principal with the role "reader" and a key of it.
type testKey struct {
	principal access.Principal
	key       access.APIKey
	presented string
}

// seed stores a principal and a key through s.
func seed(t *testing.T, s *postgres.Store) testKey {
	t.Helper()
	const prefix = "0123abcd"
	presented := "plk_" + prefix + "_" + strings.Repeat("5a", 32)
	hash := sha256.Sum256([]byte(presented))
	now := time.Now()
	tk := testKey{
		principal: access.Principal{ID: principalID, Name: "payroll-app", Roles: []string{"reader"}, CreatedAt: now},
		key: access.APIKey{ID: keyID, PrincipalID: principalID, Prefix: prefix, SecretHash: hash[:],
			Description: "as issued", CreatedAt: now},
		presented: presented,
	}
	if err := s.CreatePrincipal(t.Context(), tk.principal); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(t.Context(), tk.key); err != nil {
		t.Fatal(err)
	}
	return tk
}

// lookup returns what s.LookupKey answers for prefix, failing the test on
// an error.
func lookup(t *testing.T, s *postgres.Store, prefix string) (access.APIKey, access.Principal) {
	t.Helper()
	k, p, err := s.LookupKey(t.Context(), prefix)
	if err != nil {
		t.Fatalf("LookupKey: %v", err)
	}
	return k, p
}

func wantCached(t *testing.T, s *postgres.Store, prefix string, want bool) {
	t.Helper()
	if _, cached := postgres.CachedKey(s, prefix); cached != want {
		t.Fatalf("key cached: %v, want %v", cached, want)
	}
}

// behindTheTriggersBack runs sql with the tables' triggers off, in a
// transaction of its own, so that it notifies nobody: no cache learns of
// it. The triggers are off only inside that transaction (ALTER TABLE is
// transactional), which needs the tables' owner, not a superuser.
func behindTheTriggersBack(t *testing.T, url string, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tables := []string{"access.principals", "access.principal_roles", "access.api_keys"}
	err = pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error {
		for _, table := range tables {
			if _, err := tx.Exec(t.Context(), `ALTER TABLE `+table+` DISABLE TRIGGER USER`); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(t.Context(), sql, args...); err != nil {
			return err
		}
		for _, table := range tables {
			if _, err := tx.Exec(t.Context(), `ALTER TABLE `+table+` ENABLE TRIGGER USER`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// execByHand runs sql on a connection of its own, as an operator would.
func execByHand(t *testing.T, url string, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// refusedBy reports whether svc refuses the presented key, failing the
// test on any other error than ErrUnauthenticated.
func refusedBy(t *testing.T, svc *access.Service, presented string) bool {
	t.Helper()
	_, err := svc.Authenticate(t.Context(), presented)
	if err != nil && !errors.Is(err, access.ErrUnauthenticated) {
		t.Fatalf("Authenticate: %v", err)
	}
	return err != nil
}

// A key that gateway A has cached is refused by A once gateway B revokes
// it: B's notification empties A's cache (A's clock stands still, so the
// TTL cannot).
func TestRevocationThroughAnotherStoreReachesTheCache(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	a, b := gateway(t, url), gateway(t, url)
	stopClock(a)
	tk := seed(t, b)
	waitListening(t, a)
	svc := access.NewService(a)
	if refusedBy(t, svc, tk.presented) {
		t.Fatal("A refused the key before it was revoked")
	}
	wantCached(t, a, tk.key.Prefix, true)

	if _, err := b.UpdateKey(t.Context(), tk.key.ID, func(k *access.APIKey) error {
		k.RevokedAt = time.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A refuses the key B revoked", func() bool { return refusedBy(t, svc, tk.presented) })
}

// Roles granted and revoked through gateway B reach the principal that
// gateway A's cache returns.
func TestRoleChangesThroughAnotherStoreReachTheCache(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	a, b := gateway(t, url), gateway(t, url)
	stopClock(a)
	tk := seed(t, b)
	waitListening(t, a)
	prefix := tk.key.Prefix
	lookup(t, a, prefix)
	wantCached(t, a, prefix, true)

	rolesOfA := func(want ...string) func() bool {
		return func() bool {
			_, p := lookup(t, a, prefix)
			return slices.Equal(p.Roles, want)
		}
	}
	if _, err := b.GrantRole(t.Context(), tk.principal.ID, "writer"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A sees the role B granted", rolesOfA("reader", "writer"))
	wantCached(t, a, prefix, true)
	if _, err := b.RevokeRole(t.Context(), tk.principal.ID, "reader"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A sees the role B revoked", rolesOfA("writer"))
}

// A revocation typed by hand reaches the cache too: the triggers notify
// whoever writes.
func TestHandRunRevocationReachesTheCache(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	a := gateway(t, url)
	stopClock(a)
	tk := seed(t, a)
	waitListening(t, a)
	svc := access.NewService(a)
	if refusedBy(t, svc, tk.presented) {
		t.Fatal("refused the key before it was revoked")
	}
	wantCached(t, a, tk.key.Prefix, true)

	execByHand(t, url, `UPDATE access.api_keys SET revoked_at = now() WHERE id = $1`, tk.key.ID)
	eventually(t, "the store refuses the key revoked by hand", func() bool { return refusedBy(t, svc, tk.presented) })
}

// Lookups are answered from the cache: a change that notifies nobody is
// not seen until the entry's TTL is over, or a notification empties the
// cache.
func TestLookupsAreAnsweredFromTheCache(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	a := gateway(t, url)
	clock := testclock.New(time.Now())
	postgres.SetCacheClock(a, clock.Now)
	tk := seed(t, a)
	waitListening(t, a)
	prefix := tk.key.Prefix
	lookup(t, a, prefix)

	behindTheTriggersBack(t, url, `UPDATE access.api_keys SET description = 'changed unseen' WHERE id = $1`, tk.key.ID)
	behindTheTriggersBack(t, url, `INSERT INTO access.principal_roles (principal_id, role) VALUES ($1, 'writer')`, tk.principal.ID)
	k, p := lookup(t, a, prefix)
	if k.Description != "as issued" || !slices.Equal(p.Roles, []string{"reader"}) {
		t.Fatalf("within the TTL: description %q, roles %q; want the cached %q, [reader]", k.Description, p.Roles, "as issued")
	}

	clock.Advance(postgres.KeyCacheTTL)
	k, p = lookup(t, a, prefix)
	if k.Description != "changed unseen" || !slices.Equal(p.Roles, []string{"reader", "writer"}) {
		t.Fatalf("after the TTL: description %q, roles %q; want what is stored", k.Description, p.Roles)
	}

	behindTheTriggersBack(t, url, `UPDATE access.api_keys SET description = 'changed again' WHERE id = $1`, tk.key.ID)
	if k, _ := lookup(t, a, prefix); k.Description != "changed unseen" {
		t.Fatalf("description %q, want the one cached after the TTL", k.Description)
	}
	// A statement that changes nothing still notifies (a statement
	// trigger), and the cache empties.
	execByHand(t, url, `UPDATE access.principals SET description = description WHERE id = $1`, tk.principal.ID)
	eventually(t, "a notification empties the cache", func() bool {
		k, _ := lookup(t, a, prefix)
		return k.Description == "changed again"
	})
}

// RecordKeyUse notifies nobody, so the cache keeps the key, with the use
// recorded; when it writes nothing, the cache forgets the key, whose
// LastUsedAt it then does not know.
func TestRecordKeyUseKeepsTheCache(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	a := gateway(t, url)
	stopClock(a)
	tk := seed(t, a)
	waitListening(t, a)
	prefix := tk.key.Prefix
	lookup(t, a, prefix)

	at := time.Now()
	if err := a.RecordKeyUse(t.Context(), tk.key.ID, at, at.Add(-access.UseRecordInterval)); err != nil {
		t.Fatal(err)
	}
	want := at.UTC().Truncate(time.Microsecond) // as stored
	if cached, ok := postgres.CachedKey(a, prefix); !ok || !cached.LastUsedAt.Equal(want) {
		t.Fatalf("after RecordKeyUse: cached %v, LastUsedAt %v; want %v", ok, cached.LastUsedAt, want)
	}
	behindTheTriggersBack(t, url, `UPDATE access.api_keys SET description = 'changed unseen' WHERE id = $1`, tk.key.ID)
	k, _ := lookup(t, a, prefix)
	if k.Description != "as issued" || !k.LastUsedAt.Equal(want) {
		t.Fatalf("after RecordKeyUse: description %q, LastUsedAt %v; want the cached %q and %v", k.Description, k.LastUsedAt, "as issued", want)
	}
	if stored, err := a.GetKey(t.Context(), tk.key.ID); err != nil || !stored.LastUsedAt.Equal(want) {
		t.Fatalf("stored LastUsedAt %v (%v), want %v", stored.LastUsedAt, err, want)
	}

	// Recent enough already: nothing is written, and the cache forgets.
	if err := a.RecordKeyUse(t.Context(), tk.key.ID, at.Add(time.Second), at.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantCached(t, a, prefix, false)
	if k, _ := lookup(t, a, prefix); !k.LastUsedAt.Equal(want) || k.Description != "changed unseen" {
		t.Fatalf("LastUsedAt %v, description %q; want what is stored: %v, %q", k.LastUsedAt, k.Description, want, "changed unseen")
	}
}

// While the listener's connection is lost, the cache is off: every lookup
// reads the database, and none is cached. Once it listens again, the cache
// is back.
func TestCacheIsOffWhileNotListening(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	a := gateway(t, url)
	stopClock(a)
	release := postgres.HoldRetries(a)
	defer release()
	tk := seed(t, a)
	waitListening(t, a)
	prefix := tk.key.Prefix
	lookup(t, a, prefix)
	wantCached(t, a, prefix, true)

	pid := postgres.ListenerPID(a)
	execByHand(t, url, `SELECT pg_terminate_backend($1)`, int32(pid))
	eventually(t, "the store sees its listener's connection lost", func() bool { return postgres.ListenerPID(a) == 0 })
	wantCached(t, a, prefix, false)
	for _, description := range []string{"changed while deaf", "changed again while deaf"} {
		behindTheTriggersBack(t, url, `UPDATE access.api_keys SET description = $2 WHERE id = $1`, tk.key.ID, description)
		if k, _ := lookup(t, a, prefix); k.Description != description {
			t.Fatalf("description %q while not listening, want what is stored: %q", k.Description, description)
		}
		wantCached(t, a, prefix, false)
	}

	release()
	eventually(t, "the store listens again", func() bool {
		now := postgres.ListenerPID(a)
		return now != 0 && now != pid
	})
	lookup(t, a, prefix)
	wantCached(t, a, prefix, true)
	behindTheTriggersBack(t, url, `UPDATE access.api_keys SET description = 'changed unseen' WHERE id = $1`, tk.key.ID)
	if k, _ := lookup(t, a, prefix); k.Description != "changed again while deaf" {
		t.Fatalf("description %q once listening again, want the cached %q", k.Description, "changed again while deaf")
	}
}

// Close stops the listener and closes its connection; the store works on
// without its cache, and closing again is harmless.
func TestCloseStopsTheListener(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	pool := openPool(t, url)
	if err := postgres.New(pool).Close(); err != nil {
		t.Errorf("Close of a store never used: %v", err)
	}

	a := postgres.New(pool)
	tk := seed(t, a)
	waitListening(t, a)
	pid := postgres.ListenerPID(a)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := postgres.ListenerPID(a); got != 0 {
		t.Fatalf("listening on backend %d after Close", got)
	}
	eventually(t, "the listener's backend ends", func() bool {
		var exists bool
		if err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)`, int32(pid)).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		return !exists
	})
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if k, _ := lookup(t, a, tk.key.Prefix); k.ID != tk.key.ID {
		t.Fatalf("LookupKey after Close found key %s, want %s", k.ID, tk.key.ID)
	}
	wantCached(t, a, tk.key.Prefix, false)
	if got := postgres.ListenerPID(a); got != 0 {
		t.Fatalf("a lookup after Close started a listener (backend %d)", got)
	}
}

// The triggers notify every change of a key, a principal or its roles,
// once per transaction, and nothing else: not a recorded use, not an
// UPDATE that changes no column of a key, not a rollback.
func TestTriggersNotifyEveryChangeButARecordedUse(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, `LISTEN plinth_access_changed`); err != nil {
		t.Fatal(err)
	}
	// notifications runs fn and returns how many notifications (of empty
	// payload) it made: it then notifies a marker, and counts what comes
	// before it. PostgreSQL delivers notifications in commit order.
	notifications := func(t *testing.T, fn func() error) int {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT pg_notify('plinth_access_changed', 'marker')`); err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, waitFor)
		defer cancel()
		n := 0
		for {
			got, err := listener.Conn().WaitForNotification(waitCtx)
			if err != nil {
				t.Fatalf("waiting for the marker: %v", err)
			}
			if got.Payload == "marker" {
				return n
			}
			if got.Payload != "" {
				t.Fatalf("payload %q, want none", got.Payload)
			}
			n++
		}
	}
	const otherKey = "key_01JQ0000000000000000000002"
	hash := make([]byte, 32)
	for _, tc := range []struct {
		name     string
		sql      string
		args     []any
		notifies bool
	}{
		{"insert a principal", `INSERT INTO access.principals (id, name, created_at) VALUES ($1, 'payroll-app', now())`, []any{principalID}, true},
		{"insert two keys", `INSERT INTO access.api_keys (id, principal_id, prefix, secret_hash, created_at) VALUES ($1, $3, '0123abcd', $4, now()), ($2, $3, '0123abce', $4, now())`,
			[]any{keyID, otherKey, principalID, hash}, true},
		{"record a use", `UPDATE access.api_keys SET last_used_at = now() WHERE id = $1`, []any{keyID}, false},
		{"record a use of two keys", `UPDATE access.api_keys SET last_used_at = now()`, nil, false},
		{"update a key to what it is", `UPDATE access.api_keys SET revoked_at = revoked_at, description = description WHERE id = $1`, []any{keyID}, false},
		{"update no key", `UPDATE access.api_keys SET revoked_at = now() WHERE id = 'none'`, nil, false},
		{"revoke a key", `UPDATE access.api_keys SET revoked_at = now() WHERE id = $1`, []any{keyID}, true},
		{"revoke two keys and record their use", `UPDATE access.api_keys SET revoked_at = now(), last_used_at = now()`, nil, true},
		{"change a key's expiry", `UPDATE access.api_keys SET expires_at = now() WHERE id = $1`, []any{keyID}, true},
		{"change a key's description", `UPDATE access.api_keys SET description = 'renamed' WHERE id = $1`, []any{keyID}, true},
		{"change a key's hash", `UPDATE access.api_keys SET secret_hash = $2 WHERE id = $1`, []any{keyID, append(make([]byte, 31), 1)}, true},
		{"grant a role", `INSERT INTO access.principal_roles (principal_id, role) VALUES ($1, 'reader')`, []any{principalID}, true},
		{"update a principal", `UPDATE access.principals SET description = 'renamed' WHERE id = $1`, []any{principalID}, true},
		{"revoke a role", `DELETE FROM access.principal_roles WHERE principal_id = $1`, []any{principalID}, true},
		{"delete a key", `DELETE FROM access.api_keys WHERE id = $1`, []any{otherKey}, true},
		{"truncate the roles", `TRUNCATE access.principal_roles`, nil, true},
		{"truncate the keys", `TRUNCATE access.api_keys`, nil, true},
		{"delete a principal", `DELETE FROM access.principals WHERE id = $1`, []any{principalID}, true},
	} {
		// Not subtests: each runs on what the ones before it left.
		want := 0
		if tc.notifies {
			want = 1
		}
		if got := notifications(t, func() error { _, err := pool.Exec(ctx, tc.sql, tc.args...); return err }); got != want {
			t.Errorf("%s: %d notifications, want %d", tc.name, got, want)
		}
	}
	insertPrincipal := func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO access.principals (id, name, created_at) VALUES ($1, 'payroll-app', now())`, principalID)
		return err
	}
	rolledBack := func() error {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := insertPrincipal(tx); err != nil {
				return err
			}
			return errRollBack
		})
		if !errors.Is(err, errRollBack) {
			return fmt.Errorf("want the rollback, got %v", err)
		}
		return nil
	}
	if got := notifications(t, rolledBack); got != 0 {
		t.Errorf("a rolled back change: %d notifications, want none", got)
	}
	several := func() error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := insertPrincipal(tx); err != nil {
				return err
			}
			for _, role := range []string{"reader", "writer", "auditor"} {
				if _, err := tx.Exec(ctx, `INSERT INTO access.principal_roles (principal_id, role) VALUES ($1, $2)`, principalID, role); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if got := notifications(t, several); got != 1 {
		t.Errorf("four statements in one transaction: %d notifications, want 1", got)
	}
}

var errRollBack = errors.New("roll back")

// The migration's Down removes what its Up adds, and Up applies again
// after it.
func TestNotifyMigrationDownAndUpAgain(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	ctx := t.Context()
	up, down := pgtest.MigrationSections(t, postgres.Migrations(), "00002_notify_changes.sql")
	triggers := func() int {
		var n int
		if err := pool.QueryRow(ctx, `
SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'access' AND NOT t.tgisinternal`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := triggers(); n != 4 {
		t.Fatalf("%d triggers after Up, want 4", n)
	}
	if _, err := pool.Exec(ctx, down); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if n := triggers(); n != 0 {
		t.Fatalf("%d triggers after Down, want none", n)
	}
	var function bool
	if err := pool.QueryRow(ctx, `SELECT to_regprocedure('access.notify_changed()') IS NOT NULL`).Scan(&function); err != nil || function {
		t.Fatalf("the function is left after Down (%v)", err)
	}
	if _, err := pool.Exec(ctx, up); err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	if n := triggers(); n != 4 {
		t.Fatalf("%d triggers after Up again, want 4", n)
	}
}

// A key revoked inside a request's transaction is refused by the same
// gateway as soon as that transaction has committed, before the request
// answers, even if a lookup cached the key again (as still committed)
// between the revocation and the commit, and even before the revocation's
// own notification is handled.
func TestRevocationInARequestIsSeenWhenItCommits(t *testing.T) {
	t.Parallel()
	url := sharedDatabase(t)
	pool := openPool(t, url)
	a := postgres.New(pool)
	release := postgres.HoldNotifications(a)
	t.Cleanup(func() {
		release()
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	stopClock(a)
	tk := seed(t, a)
	waitListening(t, a)
	ctx := t.Context()

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	tx, br := pgtx.BeginWith(ctx, pool, b)
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := a.UpdateKey(pgtx.WithTx(ctx, tx), tk.key.ID, func(k *access.APIKey) error {
		k.RevokedAt = time.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Another call, outside the request, reads the key as still committed.
	if k, _ := lookup(t, a, tk.key.Prefix); !k.RevokedAt.IsZero() {
		t.Fatal("the revocation is visible before it commits")
	}
	wantCached(t, a, tk.key.Prefix, true)

	if err := tx.CommitWith(ctx, &pgx.Batch{}); err != nil {
		t.Fatal(err)
	}
	wantCached(t, a, tk.key.Prefix, false)
	if k, _ := lookup(t, a, tk.key.Prefix); k.RevokedAt.IsZero() {
		t.Error("after the commit, the gateway that revoked the key still serves it as not revoked")
	}
}
