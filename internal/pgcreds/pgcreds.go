// Package pgcreds gives a pgx pool dynamic PostgreSQL credentials from
// Vault's database secrets engine.
//
// A Source reads <mount>/creds/<role>: Vault creates a PostgreSQL role with
// a random password that lives as long as the lease Vault hands out with it,
// and drops the role (its revocation statements) when the lease ends. The
// Source keeps the lease renewed and, when renewing can no longer extend it
// far enough (the role's max_ttl) or the Vault login that made it changed,
// fetches new credentials ahead of expiry:
//
//	issue ──renew──renew── ... ──┬─ rotate: new credentials; pool.Reset()
//	                             │  idle connections close now, busy ones
//	                             │  when their work is done
//	                             └─ lead ─┤ old lease ends: Vault drops the role
//
// The lead is at least Options.Drain (the longest a connection stays checked
// out) and a little, so a connection in use at rotation finishes its work and is closed
// before Vault revokes the credentials it logged in with (revocation
// terminates what is left). New connections log in with whatever credentials
// are current (pgxpool's BeforeConnect).
//
// When Vault cannot be reached, nothing changes until the credentials
// expire: open connections keep working, and new ones log in with the
// credentials held. Once they have expired, a new connection fails with a
// *domainerr.UnavailableError ("database credentials unavailable"), which
// the gateway answers with Unavailable; the Source keeps trying, and new
// connections work again as soon as Vault gives new credentials.
//
// Tables must not belong to a role that lives as long as a lease: with
// Options.Owner, every connection runs SET ROLE to that stable role (the
// Vault role's creation statements make its users members of it), so what
// migrations create belongs to it.
//
// The password is kept in memory only: it is never logged, nor put in an
// error.
package pgcreds

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/domainerr"
)

// Options configures a Source.
type Options struct {
	// Mount is the mount of the database secrets engine, e.g. "database".
	Mount string
	// Role is the Vault role whose credentials are read
	// (<Mount>/creds/<Role>).
	Role string
	// Owner is the PostgreSQL role every connection SETs ROLE to, so that
	// the objects it creates outlive the dynamic role it logged in as.
	// Empty leaves the connection's role alone.
	Owner string
	// Drain is the longest a connection stays checked out for one piece of
	// work (the gateway's request timeout). Credentials are replaced at
	// least this long before they expire, so that connections busy at that
	// moment finish first. Zero means 30s.
	Drain time.Duration
	// Log receives what happens to the credentials (never the password).
	// Nil discards it.
	Log *slog.Logger
}

// Timing.
const (
	// connectWait is how long a new connection waits for new credentials
	// when the ones held have expired, before it fails: long enough to
	// catch a fetch under way, short enough not to hold calls up when
	// Vault is down.
	connectWait = 2 * time.Second
	// tokenPoll is how often the Source checks whether the Vault login
	// changed (an AppRole token replaced by a new login): leases die with
	// the token that made them, so credentials made under an old token
	// are replaced.
	tokenPoll = 5 * time.Second
	// retryMin and retryMax bound the pause between failed attempts.
	retryMin = 500 * time.Millisecond
	retryMax = 5 * time.Second
	// callTimeout bounds one Vault call of the renewal loop.
	callTimeout = 30 * time.Second
	// expirySlack: credentials this close to their end are not used for a
	// new connection. The expiry is computed from when the answer arrived,
	// a little after Vault computed its own.
	expirySlack = time.Second
	// revokeTimeout bounds the revocations of Close.
	revokeTimeout = 5 * time.Second
	// drainSlack is added to Options.Drain: a connection released at the
	// end of the drain time still has to be closed, and Vault's expiry may
	// be a little earlier than ours (the answer's latency).
	drainSlack = 2 * time.Second
)

// Source keeps credentials from Vault current for the pools it made.
type Source struct {
	client *vaultapi.Client
	opts   Options
	path   string // <mount>/creds/<role>
	log    *slog.Logger

	mu      sync.Mutex
	cur     *lease        // never nil after New
	fresh   chan struct{} // closed when cur is replaced
	gen     uint64        // incremented when cur is replaced
	retired []*lease      // replaced leases that may still be alive, revoked by Close
	pools   []*pgxpool.Pool
	lastErr error // why the last attempt to renew or replace failed; nil after a success

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// lease is one set of credentials and what Vault said of it.
type lease struct {
	id        string
	user      string
	password  string
	ttl       time.Duration // as granted when issued
	expires   time.Time     // when Vault ends it, as far as we know
	renewable bool
	token     [32]byte // SHA-256 of the Vault token that made it
}

// New reads credentials from Vault and starts keeping them current; it
// fails if Vault does not give them. Close stops it.
func New(ctx context.Context, client *vaultapi.Client, opts Options) (*Source, error) {
	if opts.Mount == "" || opts.Role == "" {
		return nil, errors.New("pgcreds: the database secrets engine's mount and role are required")
	}
	if opts.Drain <= 0 {
		opts.Drain = 30 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		client: client,
		opts:   opts,
		path:   strings.Trim(opts.Mount, "/") + "/creds/" + opts.Role,
		log:    log,
		fresh:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	l, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = l
	if s.lead(l.ttl) < opts.Drain+drainSlack {
		log.Warn("postgres: the Vault role's credentials live too briefly to let busy connections finish before they are revoked; raise the role's default_ttl",
			"vault_role", s.path, "ttl", l.ttl.String(), "drain", opts.Drain.String())
	}
	log.Info("postgres: credentials from Vault", "vault_role", s.path, "user", l.user, "expires", l.expires.UTC().Format(time.RFC3339))
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	go s.run(loopCtx)
	return s, nil
}

// NewPool opens a pool configured by pc whose connections log in with the
// Source's credentials (and SET ROLE to Options.Owner), and are replaced
// when the credentials are. It replaces pc's BeforeConnect and AfterConnect
// with its own, which call pc's first. Close the pool before the Source.
func (s *Source) NewPool(ctx context.Context, pc *pgxpool.Config) (*pgxpool.Pool, error) {
	before, after := pc.BeforeConnect, pc.AfterConnect
	pc.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if before != nil {
			if err := before(ctx, cc); err != nil {
				return err
			}
		}
		l, err := s.credentials(ctx)
		if err != nil {
			return err
		}
		cc.User, cc.Password = l.user, l.password
		return nil
	}
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, conn); err != nil {
				return err
			}
		}
		if s.opts.Owner == "" {
			return nil
		}
		// Objects are owned by the current user, which SET ROLE makes the
		// stable owner, not the dynamic role that Vault will drop.
		if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{s.opts.Owner}.Sanitize()); err != nil {
			return fmt.Errorf("pgcreds: SET ROLE %s (is the Vault role's user a member of it?): %w", s.opts.Owner, err)
		}
		return nil
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.pools = append(s.pools, pool)
	rotated := s.gen != gen
	s.mu.Unlock()
	if rotated {
		// Replaced while the pool was being made: it may hold
		// connections with the old credentials.
		pool.Reset()
	}
	return pool, nil
}

// User returns the name of the PostgreSQL role the current credentials log
// in as (not a secret: it shows in pg_stat_activity).
func (s *Source) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.user
}

// Close stops renewing and revokes the credentials it holds, so that the
// roles are dropped now rather than when their leases end. Close the pools
// first: revocation terminates the sessions that still use them.
func (s *Source) Close() { s.closeOnce.Do(s.close) }

func (s *Source) close() {
	s.stop()
	<-s.done
	s.mu.Lock()
	leases := append(s.retired, s.cur)
	s.retired = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	for _, l := range leases {
		if l.id == "" || time.Now().After(l.expires) {
			continue
		}
		if err := s.client.Sys().RevokeWithContext(ctx, l.id); err != nil {
			s.log.Warn("postgres: could not revoke the credentials from Vault; they expire by themselves",
				"user", l.user, "expires", l.expires.UTC().Format(time.RFC3339), "error", err.Error())
		}
	}
}

// credentials returns credentials good for a new connection. If those held
// have expired it waits a little for new ones, and then fails with an
// UnavailableError.
func (s *Source) credentials(ctx context.Context) (*lease, error) {
	waited := false
	for {
		s.mu.Lock()
		cur, fresh, lastErr := s.cur, s.fresh, s.lastErr
		s.mu.Unlock()
		if time.Until(cur.expires) > expirySlack {
			return cur, nil
		}
		if waited {
			cause := lastErr
			if cause == nil {
				cause = errors.New("no new credentials yet")
			}
			return nil, &domainerr.UnavailableError{
				Dependency: "database credentials",
				Err: fmt.Errorf("pgcreds: the credentials from Vault (%s) for PostgreSQL expired at %s and new ones cannot be had: %w",
					s.path, cur.expires.UTC().Format(time.RFC3339), cause),
			}
		}
		timer := time.NewTimer(connectWait)
		select {
		case <-fresh:
		case <-timer.C:
			waited = true
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		timer.Stop()
	}
}

// run keeps the credentials current until ctx is done.
func (s *Source) run(ctx context.Context) {
	defer close(s.done)
	var (
		retry    time.Duration // pause after a failure; 0 after a success
		failures int
		expired  bool // said in the log that the credentials expired
	)
	for {
		cur := s.current()
		var wait time.Duration
		switch {
		case !s.due(cur):
			// Wake at the turn, and meanwhile now and then to see whether
			// the Vault login changed.
			wait = min(time.Until(cur.expires.Add(-s.lead(cur.ttl))), tokenPoll)
		case retry > 0:
			wait = retry
		}
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		if !s.due(s.current()) {
			continue
		}
		err := s.refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if err == nil {
			if failures > 0 {
				s.log.Info("postgres: Vault answers again; the credentials are current", "vault_role", s.path, "failed_attempts", failures)
			}
			// A floor, in case what Vault gave is due at once (a lease
			// shorter than a second): no busy loop.
			retry, failures, expired = 0, 0, false
			if s.due(s.current()) {
				retry = retryMin
			}
			continue
		}
		failures++
		retry = min(max(2*retry, retryMin), retryMax)
		cur = s.current()
		switch {
		case !expired && time.Now().After(cur.expires):
			expired = true
			s.log.Error("postgres: the credentials from Vault have expired and Vault gives no new ones: new connections fail until it does",
				"vault_role", s.path, "error", err.Error())
		case failures == 1:
			s.log.Warn("postgres: cannot renew or replace the credentials from Vault; retrying until they expire",
				"vault_role", s.path, "expires", cur.expires.UTC().Format(time.RFC3339), "error", err.Error())
		}
	}
}

// current returns the lease in use. Leases are never changed once made
// (a renewal makes a new one), so its fields can be read without the lock.
func (s *Source) current() *lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// lead is how long before a lease of ttl ends it is replaced: a third of
// it, but at least the drain time (and a little), so that busy connections
// finish first; at most half of it, or short leases would be replaced all
// the time.
func (s *Source) lead(ttl time.Duration) time.Duration {
	return min(max(ttl/3, s.opts.Drain+drainSlack), ttl/2)
}

// due says whether cur needs renewing or replacing now.
func (s *Source) due(cur *lease) bool {
	return time.Until(cur.expires) <= s.lead(cur.ttl) || cur.token != tokenHash(s.client.Token())
}

// refresh renews the current lease if that extends it far enough, and
// replaces it otherwise. Only run calls it.
func (s *Source) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cur := s.current()
	sameLogin := cur.token == tokenHash(s.client.Token())
	if cur.renewable && sameLogin && time.Now().Before(cur.expires) {
		sec, err := s.client.Sys().RenewWithContext(ctx, cur.id, int(cur.ttl/time.Second))
		switch {
		case err == nil && sec != nil:
			got := time.Duration(sec.LeaseDuration) * time.Second
			renewed := *cur
			renewed.expires = time.Now().Add(got)
			s.mu.Lock()
			s.cur = &renewed
			s.mu.Unlock()
			cur = &renewed
			// Worth it if it buys a third of a lease before the next turn;
			// otherwise the role's max_ttl is near: replace.
			if got-s.lead(cur.ttl) >= cur.ttl/3 {
				s.log.Debug("postgres: renewed the credentials from Vault", "user", cur.user, "expires", cur.expires.UTC().Format(time.RFC3339))
				return nil
			}
		case err != nil:
			// The lease may be gone (revoked, or a Vault that lost it):
			// new credentials are the remedy either way.
			s.log.Debug("postgres: renewing the credentials from Vault failed; fetching new ones", "user", cur.user, "error", err.Error())
		}
	}
	next, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = next
	s.gen++
	close(s.fresh)
	s.fresh = make(chan struct{})
	live := s.retired[:0]
	for _, l := range s.retired {
		if time.Now().Before(l.expires) {
			live = append(live, l)
		}
	}
	s.retired = append(live, cur)
	pools := append([]*pgxpool.Pool(nil), s.pools...)
	s.mu.Unlock()
	// After the swap: a connection made from now on logs in with the new
	// credentials, and Reset retires every connection made before it
	// (idle ones now, busy ones when they are released).
	for _, p := range pools {
		p.Reset()
	}
	reason := "the old ones near their end"
	if !sameLogin {
		reason = "the Vault login changed"
	}
	s.log.Info("postgres: new credentials from Vault; connections with the old ones are being replaced",
		"vault_role", s.path, "user", next.user, "replaces", cur.user, "reason", reason,
		"expires", next.expires.UTC().Format(time.RFC3339))
	return nil
}

// fetch reads new credentials.
func (s *Source) fetch(ctx context.Context) (*lease, error) {
	token := tokenHash(s.client.Token())
	sec, err := s.client.Logical().ReadWithContext(ctx, s.path)
	if err != nil {
		// Vault's errors name the path and the answer, never the token.
		return nil, fmt.Errorf("pgcreds: read %s from Vault: %w", s.path, err)
	}
	if sec == nil {
		return nil, fmt.Errorf("pgcreds: Vault has no %s (is the database secrets engine mounted there, with that role?)", s.path)
	}
	user, _ := sec.Data["username"].(string)
	password, _ := sec.Data["password"].(string)
	if user == "" || password == "" {
		return nil, fmt.Errorf("pgcreds: %s gave no username and password: is it a database secrets engine's role?", s.path)
	}
	ttl := time.Duration(sec.LeaseDuration) * time.Second
	expires := time.Now().Add(ttl)
	if ttl <= 0 {
		// No lease: the credentials do not expire (Vault always sets one
		// for dynamic roles; this guards the arithmetic).
		ttl = 100 * 365 * 24 * time.Hour
		expires = time.Now().Add(ttl)
	}
	return &lease{
		id:        sec.LeaseID,
		user:      user,
		password:  password,
		ttl:       ttl,
		expires:   expires,
		renewable: sec.Renewable,
		token:     token,
	}, nil
}

// tokenHash identifies a Vault token without keeping a second copy of it.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }
