package e2e

import (
	"context"
	"fmt"
	"net/http"
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

// keyedSignUp is one SignUpCustomer a client means to make exactly once.
type keyedSignUp struct {
	key         string
	name, email string
	customerID  string // of the first answer; "" until answered
	mismatch    string
}

// TestFaultVaultRestart stops Vault in the middle of a load of keyed
// sign-ups (whose PII is sealed under data keys from Vault Transit) spread
// over two gateways on one database, and starts it again: the gateway that
// has sealed before keeps sealing with the data keys it holds, the one
// that has not fails with Unavailable and writes nothing, and once Vault is
// back both serve; every sign-up, retried with its key (on either gateway)
// until answered, exists exactly once, reads back, and nothing in the
// database is in the clear.
//
// A Vault dev server keeps everything in memory, so the one that comes back
// is empty: the test restores what a real, persistent Vault would still
// have (its engines, the transit class keys from a backup, the blind index
// keys) before letting calls through again.
func TestFaultVaultRestart(t *testing.T) {
	vault := vaulttest.NewServer(t)
	transit := vault.EnableTransit(t, "transit-fault")
	kv := vault.EnableKV(t, "kv-fault")
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_POSTGRES_MAX_CONNS=12",
		"PLINTH_KEYRING_BACKEND=vault",
		"PLINTH_KEYRING_VAULT_ADDRESS=" + vault.Addr,
		"PLINTH_KEYRING_TRANSIT_MOUNT=" + transit,
		"PLINTH_KEYRING_KV_MOUNT=" + kv,
		"VAULT_TOKEN=" + vault.Token,
	}
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	ctx := context.Background()
	newClient := func(base string) customersv1connect.CustomerServiceClient {
		return customersv1connect.NewCustomerServiceClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}, base, plinth.WithAPIKey(key))
	}
	// warm has sealed before the outage; cold has not, so it holds no key.
	warmG, coldG := startGateway(t, env), startGateway(t, env)
	warm, cold := newClient(warmG.base), newClient(coldG.base)
	clients := []customersv1connect.CustomerServiceClient{warm, cold}

	signUp := func(c customersv1connect.CustomerServiceClient, s *keyedSignUp) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: s.name, Email: s.email})
		req.Header().Set("Idempotency-Key", s.key)
		res, err := c.SignUpCustomer(ctx, req)
		if err == nil {
			if id := res.Msg.GetCustomer().GetId(); s.customerID == "" {
				s.customerID = id
			} else if id != s.customerID {
				s.mismatch = fmt.Sprintf("customer %s after %s", id, s.customerID)
			}
		}
		return res, err
	}
	first := &keyedSignUp{key: "vault-fault-first", name: "Vaultfault Firstperson", email: "vaultfault-first@example.com"}
	if _, err := signUp(warm, first); err != nil {
		t.Fatal(err)
	}
	all := []*keyedSignUp{first}

	const workers, perWorker = 6, 25
	plan := make([][]*keyedSignUp, workers)
	for w := range workers {
		for i := range perWorker {
			n := w*perWorker + i
			s := &keyedSignUp{key: fmt.Sprintf("vault-fault-%d", n),
				name: fmt.Sprintf("Vaultfault Person%03d", n), email: fmt.Sprintf("vaultfault%03d@example.com", n)}
			plan[w] = append(plan[w], s)
			all = append(all, s)
		}
	}

	// Phases: 0 before the outage, 1 Vault down, 2 after it is back.
	var (
		phase     atomic.Int32
		gate      sync.RWMutex // held by the test while it restores Vault
		answered  atomic.Int64
		whileDown codeCounts
		otherwise codeCounts
		// successes[gateway][phase]
		successes [2][3]atomic.Int64
		wg        sync.WaitGroup
		done      = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			calls := w
			for _, s := range plan[w] {
				for deadline := time.Now().Add(60 * time.Second); ; {
					select {
					case <-done:
						return
					default:
					}
					gate.RLock()
					before := phase.Load()
					// Only the warm gateway before the outage; from then
					// on, each attempt on the other gateway.
					which := 0
					if before > 0 {
						which = calls % 2
					}
					calls++
					_, err := signUp(clients[which], s)
					after := phase.Load()
					gate.RUnlock()
					if err == nil {
						successes[which][after].Add(1)
						break
					}
					if before == 1 && after == 1 {
						whileDown.add(connect.CodeOf(err))
					} else {
						otherwise.add(connect.CodeOf(err))
					}
					if time.Now().After(deadline) {
						t.Errorf("%s got no answer in 60s: %v", s.key, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				answered.Add(1)
			}
		})
	}
	defer func() { close(done); wg.Wait() }()
	waitAnswered := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); answered.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d sign-ups answered after 60s, want %d", answered.Load(), n)
			}
		}
	}

	waitAnswered(workers * perWorker / 3)
	vc := vault.Client(t)
	state := backUpVault(t, vc, transit, kv)
	phase.Store(1)
	vault.Stop()
	stoppedAt := answered.Load()
	for deadline := time.Now().Add(20 * time.Second); whileDown.get(connect.CodeUnavailable) < workers; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %d calls failed with Unavailable in 20s with Vault down; failures: %v", workers, &whileDown)
		}
	}
	time.Sleep(500 * time.Millisecond) // a little more of the outage
	gate.Lock()                        // waits for the calls in flight
	if err := vault.Restart(); err != nil {
		t.Fatal(err)
	}
	restoreVault(t, vault.Client(t), transit, kv, state)
	phase.Store(2)
	gate.Unlock()
	t.Logf("Vault stopped after %d sign-ups were answered, started again after %d", stoppedAt, answered.Load())

	waitAnswered(workers * perWorker)
	wg.Wait()
	t.Logf("sign-ups answered: before the outage %d (warm) + %d (cold), during it %d (warm) + %d (cold), after it %d (warm) + %d (cold); failures during it: %v, otherwise: %v",
		successes[0][0].Load(), successes[1][0].Load(), successes[0][1].Load(), successes[1][1].Load(),
		successes[0][2].Load(), successes[1][2].Load(), &whileDown, &otherwise)
	whileDown.only(t, "with Vault down", connect.CodeUnavailable)
	otherwise.only(t, "around the stop and start", connect.CodeUnavailable)
	if successes[1][2].Load() == 0 {
		t.Error("the gateway that had never sealed did not serve a sign-up once Vault was back")
	}

	// Every sign-up: one answer, once in the database, readable (through
	// the cold gateway, which must unwrap what the warm one sealed), and a
	// retry with its key on the other gateway replays it.
	for i, s := range all {
		if s.customerID == "" {
			t.Fatalf("%s was never answered", s.key)
		}
		if s.mismatch != "" {
			t.Errorf("%s: a retry got another answer: %s", s.key, s.mismatch)
		}
		got, err := cold.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: s.customerID}))
		if err != nil || got.Msg.GetCustomer().GetName() != s.name || got.Msg.GetCustomer().GetEmail() != s.email {
			t.Errorf("reading %s back: %v, %v", s.key, got, err)
		}
		if i%3 == 0 {
			res, err := signUp(clients[i%2], s)
			if err != nil || res.Header().Get("Idempotent-Replayed") != "true" {
				t.Errorf("retrying %s: %v, %v; want its answer replayed", s.key, res, err)
			}
		}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var customers int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM customers.customers`).Scan(&customers); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if customers != len(all) {
		t.Errorf("the database holds %d customers; %d sign-ups were made", customers, len(all))
	}
	var pii []string
	for _, s := range all {
		pii = append(pii, s.name, s.email)
	}
	noPlaintextPII(t, dbURL, pii...)
	noPanics(t, warmG)
	noPanics(t, coldG)
	warmG.stop(t)
	coldG.stop(t)
}

// vaultState is what a persistent Vault would still hold after a restart
// and a dev server forgets: the keyring's transit keys and KV secrets.
type vaultState struct {
	transitBackups map[string]string         // key name -> backup
	kvSecrets      map[string]map[string]any // path under the mount -> data
}

// backUpVault backs up the transit keys and the blind index keys the
// keyring made (root token: this is the operator's doing, not Plinth's).
func backUpVault(t *testing.T, vc *vaultapi.Client, transit, kv string) vaultState {
	t.Helper()
	ctx := context.Background()
	st := vaultState{transitBackups: map[string]string{}, kvSecrets: map[string]map[string]any{}}
	keys, err := vc.Logical().ListWithContext(ctx, transit+"/keys")
	if err != nil || keys == nil {
		t.Fatalf("list transit keys: %v, %v", keys, err)
	}
	for _, k := range keys.Data["keys"].([]any) {
		name := k.(string)
		if _, err := vc.Logical().WriteWithContext(ctx, transit+"/keys/"+name+"/config",
			map[string]any{"exportable": true, "allow_plaintext_backup": true}); err != nil {
			t.Fatalf("make transit key %s backable: %v", name, err)
		}
		b, err := vc.Logical().ReadWithContext(ctx, transit+"/backup/"+name)
		if err != nil || b == nil {
			t.Fatalf("back up transit key %s: %v, %v", name, b, err)
		}
		st.transitBackups[name] = b.Data["backup"].(string)
	}
	const dir = "plinth/index-keys/"
	list, err := vc.Logical().ListWithContext(ctx, kv+"/metadata/"+dir)
	if err != nil || list == nil {
		t.Fatalf("list the blind index keys: %v, %v", list, err)
	}
	for _, k := range list.Data["keys"].([]any) {
		sec, err := vc.KVv2(kv).Get(ctx, dir+k.(string))
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		st.kvSecrets[dir+k.(string)] = sec.Data
	}
	if len(st.transitBackups) == 0 || len(st.kvSecrets) == 0 {
		t.Fatalf("nothing to back up: %d transit keys, %d KV secrets", len(st.transitBackups), len(st.kvSecrets))
	}
	return st
}

// restoreVault gives a restarted, empty dev server back what backUpVault
// saved, at the same mounts.
func restoreVault(t *testing.T, vc *vaultapi.Client, transit, kv string, st vaultState) {
	t.Helper()
	ctx := context.Background()
	if err := vc.Sys().MountWithContext(ctx, transit, &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if err := vc.Sys().MountWithContext(ctx, kv, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	for name, backup := range st.transitBackups {
		if _, err := vc.Logical().WriteWithContext(ctx, transit+"/restore/"+name, map[string]any{"backup": backup}); err != nil {
			t.Fatalf("restore transit key %s: %v", name, err)
		}
	}
	for path, data := range st.kvSecrets {
		if _, err := vc.KVv2(kv).Put(ctx, path, data); err != nil {
			t.Fatalf("restore %s: %v", path, err)
		}
	}
}
