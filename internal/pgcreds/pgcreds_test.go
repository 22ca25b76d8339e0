package pgcreds

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/vaulttest"
)

// Each test starts a Vault server of its own (vaulttest.NewServer, which
// stops it when the test ends), so pgtest's Main is the only one needed.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// logBuffer collects a Source's log, for tests that check what it says
// and that it never says a password.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// setup is a database whose credentials come from a Vault server of the
// test's own, and a Source and a pool over them.
type setup struct {
	vault *vaulttest.Server
	pg    *vaulttest.Postgres
	admin string // the database as its superuser, to look at sessions and roles
	src   *Source
	pool  *pgxpool.Pool
	logs  *logBuffer
}

func newSetup(t *testing.T, ttl, maxTTL time.Duration, client func(*vaulttest.Server) *vaultapi.Client) *setup {
	t.Helper()
	admin := pgtest.NewDatabase(t)
	vault := vaulttest.NewServer(t)
	pg := vault.EnablePostgres(t, "", admin, ttl, maxTTL)
	logs := &logBuffer{}
	vc := vault.Client(t)
	if client != nil {
		vc = client(vault)
	}
	src, err := New(t.Context(), vc, Options{
		Mount: pg.Mount, Role: pg.Role, Owner: pg.Owner, Drain: time.Second,
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	pc, err := pgxpool.ParseConfig(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 4
	pool, err := src.NewPool(t.Context(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // before src.Close: cleanups run last first
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the Source's log:\n%s", logs)
		}
	})
	return &setup{vault: vault, pg: pg, admin: admin, src: src, pool: pool, logs: logs}
}

// whoami returns the session's login role and current role.
func whoami(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (session, current string, err error) {
	err = q.QueryRow(ctx, "SELECT session_user, current_user").Scan(&session, &current)
	return session, current, err
}

// sessionsOf returns how many sessions role has open.
func (s *setup) sessionsOf(t *testing.T, role string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// roleExists says whether role is in PostgreSQL.
func (s *setup) roleExists(t *testing.T, role string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// eventually polls cond every 100ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRotation: credentials live 10s, renewable up to 20s. The Source
// renews them, replaces them before the 20s are up, and the pool goes on
// working throughout: a transaction open across the rotation commits,
// connections with the old credentials are closed, and new ones log in as
// the new role. Vault then drops the old role when its lease ends.
func TestRotation(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := newSetup(t, 10*time.Second, 20*time.Second, nil)
	ctx := t.Context()
	first := s.src.current()

	// The role is Vault's, and tables belong to the owner role.
	session, current, err := whoami(ctx, s.pool)
	if err != nil {
		t.Fatal(err)
	}
	if session != first.user || !strings.HasPrefix(session, "v-") || current != s.pg.Owner {
		t.Fatalf("session_user %q, current_user %q; want Vault's %q and the owner %q", session, current, first.user, s.pg.Owner)
	}
	if _, err := s.pool.Exec(ctx, "CREATE TABLE work (id bigint GENERATED ALWAYS AS IDENTITY, by_role text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	var owner string
	if err := s.pool.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'work'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != s.pg.Owner {
		t.Errorf("the table belongs to %q, want the owner role %q", owner, s.pg.Owner)
	}

	// PostgreSQL checks the password: a wrong one is refused, and the
	// refusal does not repeat the right one.
	cc, err := pgx.ParseConfig(s.pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	cc.User, cc.Password = first.user, "not-"+first.password
	if conn, err := pgx.ConnectConfig(ctx, cc); err == nil {
		conn.Close(ctx)
		t.Fatal("logged in with a wrong password")
	} else if strings.Contains(err.Error(), first.password) {
		t.Fatal("the refusal repeats the password")
	}

	// A transaction that stays open across the rotation.
	long, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := long.Exec(ctx, "INSERT INTO work (by_role) VALUES (session_user)"); err != nil {
		t.Fatal(err)
	}

	// Work goes on throughout.
	var (
		failures atomic.Int64
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := s.pool.Exec(ctx, "INSERT INTO work (by_role) VALUES (session_user)"); err != nil {
					failures.Add(1)
					t.Errorf("insert during the rotation: %v", err)
				}
			}
		})
	}
	defer func() {
		close(done)
		wg.Wait()
	}()

	// Renewed first: the same role, a later end.
	eventually(t, 12*time.Second, "the lease was not renewed", func() bool {
		cur := s.src.current()
		return cur.user == first.user && cur.expires.After(first.expires.Add(time.Second))
	})
	renewedAt := time.Since(start)
	// Then replaced, before the first lease's max_ttl is up.
	eventually(t, 15*time.Second, "the credentials were not replaced", func() bool {
		return s.src.User() != first.user
	})
	rotatedAt := time.Since(start)
	second := s.src.current()
	left := time.Until(s.src.retiredExpiry(first.user))
	t.Logf("renewed after %s, replaced after %s, %s before the old lease ends",
		renewedAt.Round(100*time.Millisecond), rotatedAt.Round(100*time.Millisecond), left.Round(100*time.Millisecond))
	if left < 2*time.Second {
		t.Errorf("replaced too late: the old lease ends in %s", left)
	}

	// The transaction opened with the old credentials finishes its work.
	if _, err := long.Exec(ctx, "INSERT INTO work (by_role) VALUES (session_user)"); err != nil {
		t.Fatalf("the transaction open across the rotation: %v", err)
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatalf("commit across the rotation: %v", err)
	}
	// Connections with the old credentials are closed once released, and
	// new ones log in as the new role.
	eventually(t, 5*time.Second, "sessions of the old role remain", func() bool {
		return s.sessionsOf(t, first.user) == 0
	})
	if n := s.sessionsOf(t, second.user); n == 0 {
		t.Errorf("no session logged in as the new role %s", second.user)
	}
	if session, current, err := whoami(ctx, s.pool); err != nil || session != second.user || current != s.pg.Owner {
		t.Fatalf("after the rotation: session_user %q, current_user %q, %v; want %q, %q", session, current, err, second.user, s.pg.Owner)
	}
	var byOld, byNew int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE by_role = $1), count(*) FILTER (WHERE by_role = $2) FROM work",
		first.user, second.user).Scan(&byOld, &byNew); err != nil {
		t.Fatal(err)
	}
	if byOld < 2 || byNew == 0 {
		t.Errorf("rows written by the old role %d, by the new one %d; want both", byOld, byNew)
	}

	// When the old lease ends, Vault revokes it: the role is dropped.
	eventually(t, time.Until(first.expires.Add(20*time.Second))+10*time.Second, "Vault did not drop the old role", func() bool {
		return !s.roleExists(t, first.user)
	})
	if failures.Load() > 0 {
		t.Errorf("%d inserts failed during the rotation", failures.Load())
	}
	for _, l := range []*lease{first, second} {
		if strings.Contains(s.logs.String(), l.password) {
			t.Error("the log holds a password")
		}
	}
	if !strings.Contains(s.logs.String(), "postgres: new credentials from Vault") {
		t.Errorf("the rotation is not in the log:\n%s", s.logs)
	}
}

// retiredExpiry returns when the replaced lease of user ends, as the
// Source knows it (renewals included).
func (s *Source) retiredExpiry(user string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.retired {
		if l.user == user {
			return l.expires
		}
	}
	return time.Time{}
}

// TestVaultOutage stops Vault: connections already open go on working even
// after the credentials expire, a new connection then fails with an
// UnavailableError that says why (to the log, not the caller), and once
// Vault is back the pool connects again, as a new role, by itself.
func TestVaultOutage(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 4*time.Second, time.Minute, nil)
	ctx := t.Context()
	first := s.src.current()
	if _, _, err := whoami(ctx, s.pool); err != nil {
		t.Fatal(err)
	}

	s.vault.Stop()
	eventually(t, 10*time.Second, "the credentials did not expire", func() bool {
		return time.Until(s.src.current().expires) < expirySlack
	})
	// The open connection still works: PostgreSQL ends nothing on
	// VALID UNTIL, and no Vault revokes anything.
	if session, _, err := whoami(ctx, s.pool); err != nil || session != first.user {
		t.Fatalf("open connection after the credentials expired: %q, %v", session, err)
	}

	// A new connection cannot log in.
	s.pool.Reset()
	began := time.Now()
	_, _, err := whoami(ctx, s.pool)
	var unavailable *domainerr.UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("new connection with Vault down: %v, want an UnavailableError", err)
	}
	if kind, _ := domainerr.KindOf(err); kind != domainerr.KindUnavailable || err.Error() != "database credentials unavailable, try again later" {
		t.Errorf("the caller is told %q (kind %v)", err.Error(), kind)
	}
	cause := errors.Unwrap(unavailable).Error()
	if !strings.Contains(cause, "expired") || !strings.Contains(cause, s.pg.Mount+"/creds/"+s.pg.Role) {
		t.Errorf("the cause, for the log, does not say what expired: %s", cause)
	}
	if strings.Contains(cause, first.password) {
		t.Error("the cause holds the password")
	}
	if waited := time.Since(began); waited > 10*time.Second {
		t.Errorf("the failing call waited %s", waited)
	}
	eventually(t, 10*time.Second, "the expiry is not in the log", func() bool {
		return strings.Contains(s.logs.String(), "the credentials from Vault have expired")
	})

	// Vault comes back (empty: a dev server keeps nothing) and is set up
	// again; the pool recovers by itself.
	if err := s.vault.Restart(); err != nil {
		t.Fatal(err)
	}
	s.vault.RestorePostgres(t, s.pg)
	var session string
	eventually(t, 20*time.Second, "the pool did not recover once Vault was back", func() bool {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		session, _, err = whoami(qctx, s.pool)
		return err == nil
	})
	if session == first.user || !strings.HasPrefix(session, "v-") {
		t.Errorf("after the outage the pool logs in as %q, want a new role of Vault's", session)
	}
	if strings.Contains(s.logs.String(), first.password) {
		t.Error("the log holds a password")
	}
}

// TestNewLoginReplacesCredentials: leases die with the Vault token that
// made them, so when the login changes (an AppRole token replaced by a new
// login) the Source fetches credentials under the new token, and revoking
// the old token then takes nothing from the pool. Close revokes what the
// Source holds.
func TestNewLoginReplacesCredentials(t *testing.T) {
	t.Parallel()
	var client *vaultapi.Client
	newToken := func(vault *vaulttest.Server) string {
		sec, err := vault.Client(t).Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"root"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	var oldToken string
	s := newSetup(t, time.Minute, 2*time.Minute, func(vault *vaulttest.Server) *vaultapi.Client {
		client = vault.Client(t)
		oldToken = newToken(vault)
		client.SetToken(oldToken)
		return client
	})
	ctx := t.Context()
	first := s.src.User()

	client.SetToken(newToken(s.vault)) // what keepLoggedIn does after a new login
	eventually(t, 3*tokenPoll, "a new login did not bring new credentials", func() bool {
		return s.src.User() != first
	})
	if err := s.vault.Client(t).Auth().Token().RevokeTreeWithContext(ctx, oldToken); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "revoking the old token left its role", func() bool {
		return !s.roleExists(t, first)
	})
	if session, _, err := whoami(ctx, s.pool); err != nil || session != s.src.User() {
		t.Fatalf("after the old login's leases were revoked: %q, %v", session, err)
	}
	if !strings.Contains(s.logs.String(), "the Vault login changed") {
		t.Errorf("the log does not say why the credentials were replaced:\n%s", s.logs)
	}

	second := s.src.User()
	s.pool.Close()
	s.src.Close()
	if s.roleExists(t, second) {
		t.Error("Close left the role of the credentials it held")
	}
}

func TestNewRequiresMountAndRole(t *testing.T) {
	t.Parallel()
	if _, err := New(t.Context(), nil, Options{Mount: "database"}); err == nil {
		t.Error("New without a role succeeded")
	}
	if _, err := New(t.Context(), nil, Options{Role: "plinth"}); err == nil {
		t.Error("New without a mount succeeded")
	}
}

func TestLead(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ttl, drain, want time.Duration
	}{
		{time.Hour, 30 * time.Second, 20 * time.Minute},        // a third of the lease
		{90 * time.Second, 30 * time.Second, 32 * time.Second}, // the drain time, and a little
		{10 * time.Second, 30 * time.Second, 5 * time.Second},  // never over half
		{30 * time.Second, time.Second, 10 * time.Second},
	} {
		s := &Source{opts: Options{Drain: c.drain}}
		if got := s.lead(c.ttl); got != c.want {
			t.Errorf("lead(ttl %s, drain %s) = %s, want %s", c.ttl, c.drain, got, c.want)
		}
	}
}
