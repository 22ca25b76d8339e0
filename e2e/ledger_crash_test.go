package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// keyedTransfer is one MoveMoney a client means to make exactly once.
type keyedTransfer struct {
	key string
	req *ledgerv1.MoveMoneyRequest

	// What the client saw: nothing yet (the gateway died first), a
	// transfer, or a final refusal.
	answered   bool
	transferID string
	code       connect.Code
	// mismatch says how a later answer differed from the first, if it did.
	mismatch string
}

// send makes the call with its key; it reports whether it got a final
// answer (not a lost connection, not "still running").
func (k *keyedTransfer) send(ctx context.Context, client ledgerv1connect.LedgerServiceClient) bool {
	req := connect.NewRequest(k.req)
	req.Header().Set("Idempotency-Key", k.key)
	res, err := client.MoveMoney(ctx, req)
	if err == nil {
		if k.answered && (k.code != 0 || k.transferID != res.Msg.GetTransfer().GetId()) {
			k.mismatch = fmt.Sprintf("answered transfer %s after transfer %q / code %v", res.Msg.GetTransfer().GetId(), k.transferID, k.code)
			return true
		}
		k.answered, k.transferID = true, res.Msg.GetTransfer().GetId()
		return true
	}
	switch code := connect.CodeOf(err); code {
	case connect.CodeFailedPrecondition, connect.CodeInvalidArgument, connect.CodeNotFound:
		if k.answered && (k.code != code || k.transferID != "") {
			k.mismatch = fmt.Sprintf("answered %v after transfer %q / code %v", code, k.transferID, k.code)
			return true
		}
		k.answered, k.code = true, code
		return true
	}
	return false
}

// TestLedgerSurvivesSIGKILL drives transfers through the real binary on
// PostgreSQL, kills the gateway with SIGKILL in the middle, starts it
// again, and retries every transfer whose answer was not seen, with its
// key: every transfer exists exactly once and the ledger's invariants hold.
func TestLedgerSurvivesSIGKILL(t *testing.T) {
	env := []string{
		"PLINTH_POSTGRES_URL=" + pgtest.NewDatabase(t),
		"PLINTH_BACKENDS_LEDGER=postgres",
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_POSTGRES_MIGRATE_ON_START=true",
		"PLINTH_POSTGRES_MAX_CONNS=24",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_KEYRING_BACKEND=local",
		"PLINTH_KEYRING_KEY_FILE=" + filepath.Join(t.TempDir(), "keys.json"),
	}
	ctx := context.Background()
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	client := ledgerv1connect.NewLedgerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key))

	open := func(policy ledgerv1.BalancePolicy) string {
		t.Helper()
		req := connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: "EUR", BalancePolicy: policy})
		req.Header().Set("Idempotency-Key", "open-"+fmt.Sprint(rand.Int64()))
		res, err := client.OpenLedgerAccount(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetAccount().GetId()
	}
	settlement := open(ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED)
	accounts := []string{settlement}
	for range 6 {
		accounts = append(accounts, open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE))
	}

	// The plan: funding first, then random movements among the customer
	// accounts (some will be refused for funds: refusals are answers too).
	var plan []*keyedTransfer
	for i, a := range accounts[1:] {
		plan = append(plan, &keyedTransfer{key: fmt.Sprintf("fund-%d", i), req: &ledgerv1.MoveMoneyRequest{
			Currency: "EUR", Legs: []*ledgerv1.Leg{{FromAccountId: settlement, ToAccountId: a, Amount: 5_000}}}})
	}
	for _, k := range plan {
		if !k.send(ctx, client) || k.code != 0 {
			t.Fatalf("funding %s: code %v", k.key, k.code)
		}
	}
	rng := rand.New(rand.NewPCG(7, 7))
	const workers, perWorker = 8, 60
	moves := make([][]*keyedTransfer, workers)
	for w := range workers {
		for i := range perWorker {
			from := accounts[1+rng.IntN(6)]
			to := accounts[1+rng.IntN(6)]
			for to == from {
				to = accounts[1+rng.IntN(6)]
			}
			moves[w] = append(moves[w], &keyedTransfer{key: fmt.Sprintf("move-%d-%d", w, i), req: &ledgerv1.MoveMoneyRequest{
				Currency: "EUR", Legs: []*ledgerv1.Leg{{FromAccountId: from, ToAccountId: to, Amount: int64(1 + rng.IntN(2_000))}}}})
		}
	}

	// Run the workers; kill the gateway once a third of the moves are
	// answered, while the rest are in flight.
	var answered atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, k := range moves[w] {
				select {
				case <-killed:
					return
				default:
				}
				if k.send(ctx, client) {
					answered.Add(1)
				}
			}
		})
	}
	for answered.Load() < workers*perWorker/3 {
		time.Sleep(time.Millisecond)
	}
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(killed)
	<-g.exited
	wg.Wait()
	seenBeforeKill := answered.Load()

	// Start again and retry every move whose answer was not seen, with its
	// key, until it gets one; retry some answered ones too: they must get
	// the same answer.
	g = startGateway(t, env)
	client = ledgerv1connect.NewLedgerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key))
	var unseen, retried int
	for _, ks := range moves {
		for i, k := range ks {
			if k.answered && i%5 != 0 {
				continue
			}
			if !k.answered {
				unseen++
			}
			retried++
			for attempt := 0; !k.send(ctx, client); attempt++ {
				if attempt > 50 {
					t.Fatalf("%s never got an answer", k.key)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	t.Logf("%d of %d moves answered before SIGKILL; %d retried after the restart, %d of them unseen",
		seenBeforeKill, workers*perWorker, retried, unseen)

	for _, ks := range moves {
		for _, k := range ks {
			if k.mismatch != "" {
				t.Errorf("%s: a retry got another answer: %s", k.key, k.mismatch)
			}
		}
	}

	// Every accepted transfer exists exactly once, and nothing else does.
	want := map[string]bool{}
	for _, k := range plan {
		want[k.transferID] = true
	}
	for _, ks := range moves {
		for _, k := range ks {
			if k.code == 0 {
				if want[k.transferID] {
					t.Fatalf("two keys got transfer %s", k.transferID)
				}
				want[k.transferID] = true
			}
		}
	}
	got := map[string]int{}
	token := ""
	for {
		page, err := client.ListTransfers(ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{PageSize: 200, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page.Msg.GetTransfers() {
			got[tr.GetId()]++
		}
		if token = page.Msg.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(got) != len(want) {
		t.Errorf("the ledger holds %d transfers, the clients were told of %d", len(got), len(want))
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("transfer %s is in the ledger %d times", id, got[id])
		}
	}

	// The invariants: balances sum to zero, none below its floor, each
	// account's entries add up to its balance.
	var sum int64
	for _, id := range accounts {
		res, err := client.GetLedgerAccount(ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: id}))
		if err != nil {
			t.Fatal(err)
		}
		a := res.Msg.GetAccount()
		sum += a.GetPostedBalance()
		if id != settlement && a.GetPostedBalance() < 0 {
			t.Errorf("account %s is below zero: %d", id, a.GetPostedBalance())
		}
		var entries int64
		tok := ""
		for {
			page, err := client.ListAccountEntries(ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: id, PageSize: 200, PageToken: tok}))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Msg.GetEntries() {
				entries += e.GetAmount()
			}
			if tok = page.Msg.GetNextPageToken(); tok == "" {
				break
			}
		}
		if entries != a.GetPostedBalance() {
			t.Errorf("account %s: entries sum to %d, balance is %d", id, entries, a.GetPostedBalance())
		}
	}
	if sum != 0 {
		t.Errorf("balances sum to %d, want 0", sum)
	}
	g.stop(t)
}
