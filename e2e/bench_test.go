package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	"plinth.dev/plinth/internal/vaulttest"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// BenchmarkSignUpCustomer measures SignUpCustomer through the real binary
// on PostgreSQL with the local keyring and with the Vault keyring, in the
// same run, so that their ratio shows whether the data-key cache spares
// each call a Vault round trip (the target: Vault at least 0.8 of local).
//
//	go test ./e2e/ -run '^$' -bench SignUpCustomer -benchtime 2000x
func BenchmarkSignUpCustomer(b *testing.B) {
	for _, keyringName := range []string{"local", "vault"} {
		b.Run(keyringName, func(b *testing.B) {
			env := []string{
				"PLINTH_POSTGRES_URL=" + pgtest.NewDatabase(b),
				"PLINTH_POSTGRES_MIGRATE_ON_START=true",
				"PLINTH_POSTGRES_MAX_CONNS=16",
				"PLINTH_BACKENDS_CUSTOMERS=postgres",
				"PLINTH_BACKENDS_ACCESS=postgres",
				"PLINTH_BACKENDS_AUDIT=postgres",
				"PLINTH_LOG_LEVEL=warn",
			}
			if keyringName == "local" {
				env = append(env, "PLINTH_KEYRING_BACKEND=local", "PLINTH_KEYRING_KEY_FILE="+filepath.Join(b.TempDir(), "keys.json"))
			} else {
				vault := vaulttest.NewServer(b)
				env = append(env, "PLINTH_KEYRING_BACKEND=vault", "PLINTH_KEYRING_VAULT_ADDRESS="+vault.Addr,
					"PLINTH_KEYRING_TRANSIT_MOUNT="+vault.EnableTransit(b, "transit-bench"),
					"PLINTH_KEYRING_KV_MOUNT="+vault.EnableKV(b, "kv-bench"), "VAULT_TOKEN="+vault.Token)
			}
			runPlinth(b, env, "migrate", "up")
			key := bootstrapKey(b, env)
			g := startGateway(b, append(env, "PLINTH_LOG_LEVEL=info"))
			transport := &http.Transport{MaxIdleConnsPerHost: 64}
			client := customersv1connect.NewCustomerServiceClient(&http.Client{Transport: transport}, g.base,
				plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
			var n atomic.Int64
			b.SetParallelism(4) // 4 × GOMAXPROCS clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, err := client.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
						Name: "Bench Customer", Email: fmt.Sprintf("bench-%d@example.com", i), TaxId: "123-45-6789",
					})); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signups/s")
		})
	}
}
