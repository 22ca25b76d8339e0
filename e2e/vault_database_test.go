package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/vaulttest"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// TestPostgresCredentialsFromVault runs the gateway with its PostgreSQL
// credentials from Vault's database secrets engine, logged in to Vault with
// AppRole as in production (one login for the keyring and the database),
// under a policy that allows what the docs say and nothing more. Every session logs in as a role Vault made, the tables
// belong to the stable owner role, the credentials are replaced before
// their max_ttl (20s here) without a failed call, and the roles are
// revoked when a plinth process ends.
func TestPostgresCredentialsFromVault(t *testing.T) {
	vault := vaulttest.NewServer(t)
	transit := vault.EnableTransit(t, "transit-pgcreds")
	kv := vault.EnableKV(t, "kv-pgcreds")
	dbURL := pgtest.NewDatabase(t) // the superuser's, for the test to look
	pg := vault.EnablePostgres(t, "database-e2e", dbURL, 10*time.Second, 20*time.Second)

	vc := vault.Client(t)
	if err := vc.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`path "%s/*" { capabilities = ["create", "read", "update"] }
path "%s/*" { capabilities = ["create", "read", "update"] }
path "%s/creds/%s" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`, transit, kv, pg.Mount, pg.Role)
	if err := vc.Sys().PutPolicy("plinth", policy); err != nil {
		t.Fatal(err)
	}
	// The secret id is good for three logins: plinth migrate's, plinth
	// bootstrap's and plinth serve's. Each process logs in once, for the keyring and the
	// PostgreSQL credentials together; a second login would be refused.
	if _, err := vc.Logical().Write("auth/approle/role/plinth", map[string]any{
		"token_policies": "plinth", "token_ttl": "1h", "token_max_ttl": "4h", "secret_id_num_uses": 3,
	}); err != nil {
		t.Fatal(err)
	}
	role, err := vc.Logical().Read("auth/approle/role/plinth/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID, err := vc.Logical().Write("auth/approle/role/plinth/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}

	env := []string{
		"PLINTH_POSTGRES_URL=" + pg.URL, // no user, no password
		"PLINTH_POSTGRES_CREDENTIALS=vault",
		"PLINTH_POSTGRES_VAULT_MOUNT=" + pg.Mount,
		"PLINTH_POSTGRES_VAULT_ROLE=" + pg.Role,
		"PLINTH_POSTGRES_OWNER_ROLE=" + pg.Owner,
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_KEYRING_BACKEND=vault",
		"PLINTH_KEYRING_VAULT_AUTH=approle",
		"PLINTH_KEYRING_VAULT_ADDRESS=" + vault.Addr,
		"PLINTH_KEYRING_TRANSIT_MOUNT=" + transit,
		"PLINTH_KEYRING_KV_MOUNT=" + kv,
		// Calls end within 3s, so credentials are replaced at least 3s
		// before they expire.
		"PLINTH_LIMITS_REQUEST_TIMEOUT=3s",
		"VAULT_ROLE_ID=" + role.Data["role_id"].(string),
		"VAULT_SECRET_ID=" + secretID.Data["secret_id"].(string),
		"VAULT_TOKEN=", // nothing to fall back on
		"PGUSER=", "PGPASSWORD=",
	}
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// vaultRoles returns the roles Vault made that exist, and the roles
	// with sessions open in the database (but Vault's own).
	vaultRoles := func() (existing, connected []string) {
		t.Helper()
		rows, err := db.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%' ORDER BY 1`)
		if err == nil {
			existing, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			t.Fatal(err)
		}
		rows, err = db.Query(ctx, `SELECT DISTINCT usename FROM pg_stat_activity
			WHERE datname = current_database() AND backend_type = 'client backend'
			AND pid <> pg_backend_pid() AND usename <> $1 ORDER BY 1`, pg.VaultUser())
		if err == nil {
			connected, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			t.Fatal(err)
		}
		return existing, connected
	}

	// plinth migrate up, then plinth bootstrap, each as a role of Vault's
	// that it revokes when it is done.
	if out := runPlinth(t, env, "migrate", "up"); !strings.Contains(out, "customers: 1 migration(s) applied") {
		t.Fatalf("migrate up said:\n%s", out)
	}
	key := bootstrapKey(t, env)
	if existing, _ := vaultRoles(); len(existing) != 0 {
		t.Errorf("plinth bootstrap left its roles behind: %v", existing)
	}
	var foreign []string
	rows, err := db.Query(ctx, `SELECT n.nspname || '.' || coalesce(c.relname, '') || ' owned by ' || pg_get_userbyid(coalesce(c.relowner, n.nspowner))
		FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'S', 'i')
		WHERE n.nspname IN ('customers', 'access', 'audit', 'idempotency')
		AND pg_get_userbyid(coalesce(c.relowner, n.nspowner)) <> $1`, pg.Owner)
	if err == nil {
		foreign, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(foreign) > 0 {
		t.Errorf("objects not owned by %s: %v", pg.Owner, foreign)
	}

	g := startGateway(t, env)
	started := time.Now()
	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	signUp := func(i int) error {
		_, err := client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("customer-%d@example.com", i),
		}))
		return err
	}
	if err := signUp(0); err != nil {
		t.Fatalf("sign-up with credentials from Vault: %v", err)
	}
	_, connected := vaultRoles()
	if len(connected) != 1 || !strings.HasPrefix(connected[0], "v-") {
		t.Fatalf("sessions log in as %v, want one role of Vault's", connected)
	}
	first := connected[0]
	var member bool
	if err := db.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", first, pg.Owner).Scan(&member); err != nil || !member {
		t.Fatalf("%s is not a member of %s: %v", first, pg.Owner, err)
	}

	// Customers sign up throughout the rotation; none may fail.
	var (
		signedUp, failed atomic.Int64
		done             = make(chan struct{})
		wg               sync.WaitGroup
	)
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if err := signUp(i); err != nil {
				failed.Add(1)
				t.Errorf("sign-up %d: %v", i, err)
			} else {
				signedUp.Add(1)
			}
		}
	})
	rotation := func() string {
		return logged(g.logs.String(), "postgres: new credentials from Vault; connections with the old ones are being replaced")
	}
	deadline := time.Now().Add(30 * time.Second)
	for rotation() == "" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if rotation() == "" {
		close(done)
		wg.Wait()
		t.Fatalf("no rotation within 30s; the gateway's log:\n%s", g.logs)
	}
	rotatedAfter := time.Since(started)
	var line struct{ User, Replaces string }
	if err := json.Unmarshal([]byte(rotation()), &line); err != nil || line.Replaces != first || line.User == first || !strings.HasPrefix(line.User, "v-") {
		t.Fatalf("the rotation's log line: %s (%v); want %s replaced by a new role", rotation(), err, first)
	}
	// The old role's sessions end; the new role's serve.
	for {
		_, connected = vaultRoles()
		if !slices.Contains(connected, first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions of the replaced role %s remain: %v", first, connected)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a few more sign-ups with the new role
	close(done)
	wg.Wait()
	if _, connected = vaultRoles(); !slices.Equal(connected, []string{line.User}) {
		t.Errorf("after the rotation sessions log in as %v, want %s only", connected, line.User)
	}
	t.Logf("credentials replaced %s after the gateway started; %d sign-ups, %d failed", rotatedAfter.Round(100*time.Millisecond), signedUp.Load(), failed.Load())
	if signedUp.Load() == 0 || failed.Load() > 0 {
		t.Errorf("%d sign-ups succeeded and %d failed around the rotation", signedUp.Load(), failed.Load())
	}
	noPlaintextPII(t, dbURL, "customer-1@example.com")

	g.stop(t)
	if existing, _ := vaultRoles(); slices.Contains(existing, line.User) {
		t.Errorf("the gateway stopped and left its role %s: %v", line.User, existing)
	}
	logs := g.logs.String()
	if strings.Contains(logs, secretID.Data["secret_id"].(string)) || strings.Contains(strings.ToLower(logs), "password") {
		t.Errorf("the gateway's log mentions a secret:\n%s", logs)
	}
}

// logged returns the last log line that has msg, or "".
func logged(logs, msg string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var entry struct{ Msg string }
		if json.Unmarshal([]byte(lines[i]), &entry) == nil && entry.Msg == msg {
			return lines[i]
		}
	}
	return ""
}

// With credentials from Vault, a postgres.url that carries a password (or a
// user) is refused, with a message that says why and does not repeat it.
func TestPostgresCredentialsFromVaultRefuseAPasswordInTheURL(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"postgres://plinth:s3cret-pw@127.0.0.1:5432/plinth", "holds a password"},
		{"postgres://127.0.0.1:5432/plinth?password=s3cret-pw", "holds a password"},
		{"postgres://plinth@127.0.0.1:5432/plinth", "names a user"},
	} {
		cmd := exec.Command(binary, "serve")
		cmd.Env = append(cmd.Environ(),
			"PLINTH_LISTEN=127.0.0.1:0",
			"PLINTH_POSTGRES_URL="+c.url,
			"PLINTH_POSTGRES_CREDENTIALS=vault",
			"PLINTH_POSTGRES_VAULT_ROLE=plinth",
			"PLINTH_KEYRING_VAULT_ADDRESS=http://127.0.0.1:1",
			"PLINTH_BACKENDS_CUSTOMERS=postgres",
		)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "postgres.url: "+c.want) || strings.Contains(string(out), "s3cret-pw") {
			t.Errorf("plinth serve with postgres.url %s and credentials from Vault: %v\n%s", strings.ReplaceAll(c.url, "s3cret-pw", "***"), err, strings.ReplaceAll(string(out), "s3cret-pw", "***"))
		}
	}
}
