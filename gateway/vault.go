package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/internal/pgcreds"
)

// vaultLogins are the process's Vault logins, one per address, method and
// credentials, shared by whatever needs Vault (the keyring, PostgreSQL's
// credentials): an AppRole secret id may be good for a single login, and
// the leases of PostgreSQL credentials die with the token that made them,
// so one login, renewed in one place, is what the gateway wants.
var vaultLogins = struct {
	sync.Mutex
	m map[[sha256.Size]byte]*vaultLogin
}{m: map[[sha256.Size]byte]*vaultLogin{}}

// vaultLogin is a logged-in client and how many users it has.
type vaultLogin struct {
	client *vaultapi.Client
	users  int
	end    func() // ends the login's renewal
}

// vaultClient returns a Vault client for cfg, logged in as cfg says:
//
//	token    VAULT_TOKEN, as Vault's own tools read it (dev and tests)
//	approle  AppRole with VAULT_ROLE_ID and VAULT_SECRET_ID (production);
//	         the login's token is renewed while it can be, and the gateway
//	         logs in again when it cannot, until stop is called
//
// Credentials come from the environment only, never from the config file.
// Callers with the same settings share one login (see vaultLogins); it
// ends when the last of them calls stop.
func vaultClient(ctx context.Context, cfg KeyringConfig, log *slog.Logger) (client *vaultapi.Client, stop func(), err error) {
	// The key covers the credentials (hashed: the map need not hold them)
	// so that a different token or secret id gets a login of its own.
	key := sha256.Sum256([]byte(strings.Join([]string{cfg.VaultAddress, cfg.VaultAuth,
		os.Getenv("VAULT_TOKEN"), os.Getenv("VAULT_ROLE_ID"), os.Getenv("VAULT_SECRET_ID")}, "\x00")))
	vaultLogins.Lock()
	defer vaultLogins.Unlock()
	l := vaultLogins.m[key]
	if l == nil {
		client, end, err := logIn(ctx, cfg, log)
		if err != nil {
			return nil, nil, err
		}
		l = &vaultLogin{client: client, end: end}
		vaultLogins.m[key] = l
	}
	l.users++
	var once sync.Once
	return l.client, func() {
		once.Do(func() {
			vaultLogins.Lock()
			defer vaultLogins.Unlock()
			if l.users--; l.users == 0 {
				delete(vaultLogins.m, key)
				l.end()
			}
		})
	}, nil
}

// logIn makes a new login for vaultClient.
func logIn(ctx context.Context, cfg KeyringConfig, log *slog.Logger) (client *vaultapi.Client, stop func(), err error) {
	vc := vaultapi.DefaultConfig() // reads VAULT_TOKEN and the VAULT_* TLS settings
	vc.Address = cfg.VaultAddress
	client, err = vaultapi.NewClient(vc)
	if err != nil {
		return nil, nil, fmt.Errorf("vault client: %w", err)
	}
	switch cfg.VaultAuth {
	case "", "token":
		if client.Token() == "" {
			return nil, nil, errors.New("Vault logins use a token (keyring.vault_auth = \"token\"): set VAULT_TOKEN, or use keyring.vault_auth = \"approle\"")
		}
		return client, func() {}, nil
	case "approle":
		roleID := os.Getenv("VAULT_ROLE_ID")
		if roleID == "" || os.Getenv("VAULT_SECRET_ID") == "" {
			return nil, nil, errors.New("keyring.vault_auth = \"approle\" needs VAULT_ROLE_ID and VAULT_SECRET_ID in the environment")
		}
		client.ClearToken()
		auth, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromEnv: "VAULT_SECRET_ID"})
		if err != nil {
			return nil, nil, fmt.Errorf("vault approle: %w", err)
		}
		secret, err := client.Auth().Login(ctx, auth)
		if err != nil {
			return nil, nil, fmt.Errorf("vault approle login: %w", err)
		}
		if secret == nil || secret.Auth == nil {
			return nil, nil, errors.New("vault approle login: no token in the answer")
		}
		renewCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		go keepLoggedIn(renewCtx, client, auth, secret, log)
		return client, cancel, nil
	default:
		return nil, nil, fmt.Errorf("keyring.vault_auth: want token or approle, got %q", cfg.VaultAuth)
	}
}

// keepLoggedIn renews the AppRole login's token while Vault allows it, and
// logs in again when the token can no longer be renewed (or a renewal
// fails), retrying with a pause while Vault is unreachable.
func keepLoggedIn(ctx context.Context, client *vaultapi.Client, auth *approle.AppRoleAuth, secret *vaultapi.Secret, log *slog.Logger) {
	for ctx.Err() == nil {
		if secret != nil && secret.Auth != nil && secret.Auth.Renewable {
			watcher, err := client.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
			if err == nil {
				go watcher.Start()
			watch:
				for {
					select {
					case <-ctx.Done():
						watcher.Stop()
						return
					case err := <-watcher.DoneCh():
						if err != nil {
							log.Warn("vault: renewing the keyring's token failed; logging in again", "error", err.Error())
						}
						break watch
					case <-watcher.RenewCh():
					}
				}
				watcher.Stop()
			}
		} else {
			// Not renewable: wait until shortly before it expires.
			ttl := time.Minute
			if secret != nil && secret.Auth != nil && secret.Auth.LeaseDuration > 0 {
				ttl = time.Duration(secret.Auth.LeaseDuration) * time.Second * 2 / 3
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(ttl):
			}
		}
		var err error
		secret, err = client.Auth().Login(ctx, auth)
		if err != nil {
			log.Warn("vault: the keyring's approle login failed; retrying", "error", err.Error())
			secret = nil
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// OpenPostgres opens the PostgreSQL pool cfg.Postgres describes, without
// connecting yet. With postgres.credentials = "vault" its connections log
// in with dynamic credentials from Vault's database secrets engine, which
// are renewed, and replaced (with the connections that used them) before
// they expire; see internal/pgcreds. Vault's address and login are the
// keyring's, and the keyring and the pool share one login. closePool
// closes the pool, waiting for the connections in use, and then, with
// credentials from Vault, stops renewing them and revokes them.
func OpenPostgres(ctx context.Context, cfg Config, log *slog.Logger) (_ *pgxpool.Pool, closePool func(), _ error) {
	pc, err := pgxpool.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		// pgx's parse errors blank out passwords.
		return nil, nil, fmt.Errorf("postgres.url: %w", err)
	}
	pc.MaxConns = int32(cfg.Postgres.MaxConns)
	// A call canceled mid-statement (its client went away, or its time ran
	// out) costs its connection: pgx's default closes it. Sending the server
	// a cancel request instead (pgconn.CancelRequestContextWatcherHandler)
	// keeps the connection but was tried and reverted: PostgreSQL acts on a
	// cancel request asynchronously, so one could land on the next call's
	// statement once the connection was back in the pool, and the fault
	// tests saw innocent calls fail with "canceling statement due to user
	// request".
	if cfg.Postgres.Credentials != "vault" {
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, nil, err
		}
		return pool, pool.Close, nil
	}
	client, release, err := vaultClient(ctx, cfg.Keyring, log)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials from Vault: %w", err)
	}
	src, err := pgcreds.New(ctx, client, pgcreds.Options{
		Mount: cfg.Postgres.VaultMount,
		Role:  cfg.Postgres.VaultRole,
		Owner: cfg.Postgres.OwnerRole,
		// A call holds a connection for at most the request timeout (its
		// context then cancels the query); credentials are replaced at
		// least that long before they expire.
		Drain: cfg.Limits.RequestTimeout.Std(),
		Log:   log,
	})
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("credentials from Vault: %w", err)
	}
	pool, err := src.NewPool(ctx, pc)
	if err != nil {
		src.Close()
		release()
		return nil, nil, err
	}
	return pool, func() {
		pool.Close()
		src.Close()
		release()
	}, nil
}
