package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

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
