package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/vaulttest"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// TestSealedWithVault runs the gateway on PostgreSQL with the Vault
// keyring (Transit, a real Vault dev server): customers' PII is sealed
// under data keys from Vault, nothing in the database is in the clear, and
// after the class key is rotated in Vault everything still reads and new
// data is sealed under the new version.
func TestSealedWithVault(t *testing.T) {
	vault := vaulttest.NewServer(t)
	transit := vault.EnableTransit(t, "transit-e2e")
	kv := vault.EnableKV(t, "kv-e2e")
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_POSTGRES_MIGRATE_ON_START=true",
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_KEYRING_BACKEND=vault",
		"PLINTH_KEYRING_VAULT_ADDRESS=" + vault.Addr,
		"PLINTH_KEYRING_TRANSIT_MOUNT=" + transit,
		"PLINTH_KEYRING_KV_MOUNT=" + kv,
		"VAULT_TOKEN=" + vault.Token,
	}
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	ctx := context.Background()

	signUp := func(name, email, taxID string) string {
		t.Helper()
		res, err := client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: name, Email: email, TaxId: taxID}))
		if err != nil {
			t.Fatalf("sign up %s: %v", name, err)
		}
		return res.Msg.GetCustomer().GetId()
	}
	katherine := signUp("Katherine Johnson", "katherine@example.com", "987-65-4321")
	signUp("Dorothy Vaughan", "dorothy@example.com", "555-12-3456")
	noPlaintextPII(t, dbURL, "Katherine Johnson", "katherine@example.com", "987-65-4321", "Dorothy Vaughan", "dorothy@example.com", "555-12-3456")

	// The class key is Vault's: it exists there, and the data keys in the
	// database are wrapped by it.
	vc := vault.Client(t)
	if sec, err := vc.Logical().Read(transit + "/keys/plinth-pii"); err != nil || sec == nil {
		t.Fatalf("transit key plinth-pii: %v, %v", sec, err)
	}

	// Rotate the class key in Vault: what was sealed before still opens
	// (the old version still unwraps), found by email too (the blind
	// index key is in Vault's KV, unchanged).
	if _, err := vc.Logical().Write(transit+"/keys/plinth-pii/rotate", nil); err != nil {
		t.Fatal(err)
	}
	g.stop(t) // a fresh gateway: no data key cached from before

	// Rewrap the stored data keys under the new version: every sealed value
	// then names v2, and nothing needs v1 any more.
	if out := runPlinth(t, env, "rewrap"); !strings.Contains(out, "customers: 2 record(s) rewrapped") {
		t.Fatalf("plinth rewrap said:\n%s", out)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var stale int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM customers.customer_pii
		WHERE position('vault:v2:'::bytea IN name) = 0 OR position('vault:v2:'::bytea IN email) = 0`).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if stale != 0 {
		t.Errorf("%d customers still have values wrapped by the old key version", stale)
	}
	g = startGateway(t, env)
	client = customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	got, err := client.FindCustomerByEmail(ctx, connect.NewRequest(&customersv1.FindCustomerByEmailRequest{Email: "KATHERINE@example.com"}))
	if err != nil || got.Msg.GetCustomer().GetId() != katherine || got.Msg.GetCustomer().GetTaxId() != "987-65-4321" {
		t.Fatalf("after rotating the class key: %v, %v", got, err)
	}
	signUp("Mary Jackson", "mary.j@example.com", "111-22-3333")
	noPlaintextPII(t, dbURL, "Mary Jackson", "mary.j@example.com", "111-22-3333")
	if strings.Contains(g.logs.String(), vault.Token) {
		t.Error("the gateway logged the Vault token")
	}
	g.stop(t)
}

// TestVaultOutage stops Vault while the gateway runs: a call that needs a
// key Vault has not already given fails with Unavailable and writes
// nothing, and calls succeed again once Vault is back, without restarting
// the gateway. (A Vault dev server keeps its state in memory, so the one
// that comes back is empty and the test enables its engines again; with a
// real, persistent Vault nothing would need doing.)
func TestVaultOutage(t *testing.T) {
	vault := vaulttest.NewServer(t)
	transit := vault.EnableTransit(t, "transit-outage")
	kv := vault.EnableKV(t, "kv-outage")
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_POSTGRES_MIGRATE_ON_START=true",
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_KEYRING_BACKEND=vault",
		"PLINTH_KEYRING_VAULT_ADDRESS=" + vault.Addr,
		"PLINTH_KEYRING_TRANSIT_MOUNT=" + transit,
		"PLINTH_KEYRING_KV_MOUNT=" + kv,
		"VAULT_TOKEN=" + vault.Token,
	}
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	ctx := context.Background()

	// A gateway that has not sealed anything yet holds no data key: its
	// first sign-up needs Vault.
	vault.Stop()
	g := startGateway(t, env)
	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Annie Easley", Email: "annie@example.com"})
	req.Header().Set("Idempotency-Key", "outage-1")
	_, err := client.SignUpCustomer(ctx, req)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable || !strings.Contains(ce.Message(), "unavailable") {
		t.Fatalf("sign-up with Vault down: %v, want unavailable", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers.customers) + (SELECT count(*) FROM customers.customer_pii)`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d customer rows written while Vault was down", rows)
	}

	// Vault comes back: the same gateway serves again, and the retry with
	// the same key does the work once.
	if err := vault.Restart(); err != nil {
		t.Fatal(err)
	}
	vc := vault.Client(t)
	if err := vc.Sys().Mount(transit, &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if err := vc.Sys().Mount(kv, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	req = connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Annie Easley", Email: "annie@example.com"})
	req.Header().Set("Idempotency-Key", "outage-1")
	res, err := client.SignUpCustomer(ctx, req)
	if err != nil {
		t.Fatalf("sign-up once Vault is back: %v", err)
	}
	if got, err := client.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: res.Msg.GetCustomer().GetId()})); err != nil || got.Msg.GetCustomer().GetName() != "Annie Easley" {
		t.Fatalf("reading it back: %v, %v", got, err)
	}
	noPlaintextPII(t, dbURL, "Annie Easley", "annie@example.com")
	g.stop(t)
}

// TestVaultAppRole runs the vault keyring logged in with AppRole, as in
// production: no token is given, only a role id and a secret id, and the
// keyring's policy allows its two mounts and nothing else.
func TestVaultAppRole(t *testing.T) {
	vault := vaulttest.NewServer(t)
	transit := vault.EnableTransit(t, "transit-approle")
	kv := vault.EnableKV(t, "kv-approle")
	vc := vault.Client(t)
	if err := vc.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	policy := `path "` + transit + `/*" { capabilities = ["create", "read", "update"] }
path "` + kv + `/*" { capabilities = ["create", "read", "update"] }`
	if err := vc.Sys().PutPolicy("plinth-keyring", policy); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Logical().Write("auth/approle/role/plinth", map[string]any{
		"token_policies": "plinth-keyring", "token_ttl": "1h", "token_max_ttl": "4h",
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
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_POSTGRES_MIGRATE_ON_START=true",
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_KEYRING_BACKEND=vault",
		"PLINTH_KEYRING_VAULT_AUTH=approle",
		"PLINTH_KEYRING_VAULT_ADDRESS=" + vault.Addr,
		"PLINTH_KEYRING_TRANSIT_MOUNT=" + transit,
		"PLINTH_KEYRING_KV_MOUNT=" + kv,
		"VAULT_ROLE_ID=" + role.Data["role_id"].(string),
		"VAULT_SECRET_ID=" + secretID.Data["secret_id"].(string),
		"VAULT_TOKEN=", // nothing to fall back on
	}
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	res, err := client.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Christine Darden", Email: "christine@example.com"}))
	if err != nil {
		t.Fatalf("sign-up with the AppRole-logged-in keyring: %v", err)
	}
	if got, err := client.GetCustomer(context.Background(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: res.Msg.GetCustomer().GetId()})); err != nil || got.Msg.GetCustomer().GetName() != "Christine Darden" {
		t.Fatalf("reading it back: %v, %v", got, err)
	}
	noPlaintextPII(t, dbURL, "Christine Darden", "christine@example.com")
	if strings.Contains(g.logs.String(), secretID.Data["secret_id"].(string)) {
		t.Error("the gateway logged the AppRole secret id")
	}
	g.stop(t)
}
