package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// vaultClient returns a Vault client for cfg, logged in as cfg says:
//
//	token    VAULT_TOKEN, as Vault's own tools read it (dev and tests)
//	approle  AppRole with VAULT_ROLE_ID and VAULT_SECRET_ID (production);
//	         the login's token is renewed while it can be, and the gateway
//	         logs in again when it cannot, until stop is called
//
// Credentials come from the environment only, never from the config file.
func vaultClient(ctx context.Context, cfg KeyringConfig, log *slog.Logger) (client *vaultapi.Client, stop func(), err error) {
	vc := vaultapi.DefaultConfig() // reads VAULT_TOKEN and the VAULT_* TLS settings
	vc.Address = cfg.VaultAddress
	client, err = vaultapi.NewClient(vc)
	if err != nil {
		return nil, nil, fmt.Errorf("vault client: %w", err)
	}
	switch cfg.VaultAuth {
	case "", "token":
		if client.Token() == "" {
			return nil, nil, errors.New("the vault keyring logs in with a token: set VAULT_TOKEN (or keyring.vault_auth = \"approle\")")
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
