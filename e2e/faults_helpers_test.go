package e2e

// Helpers of the fault tests (faults_*_test.go); docs/reliability.md lists
// the tests and what each proves.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// faultLedgerEnv is the environment of a gateway whose ledger, access and
// audit are on PostgreSQL at dbURL, sealing with a local key file.
func faultLedgerEnv(t *testing.T, dbURL string, extra ...string) []string {
	t.Helper()
	return append([]string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_BACKENDS_LEDGER=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_POSTGRES_MAX_CONNS=16",
		"PLINTH_KEYRING_BACKEND=local",
		"PLINTH_KEYRING_KEY_FILE=" + filepath.Join(t.TempDir(), "keys.json"),
	}, extra...)
}

// newLedgerClient returns a ledger client of the gateway at base over its
// own connections (HTTP/1.1, the Connect protocol), without retries: the
// tests retry themselves, with the same key.
func newLedgerClient(base, key string, opts ...connect.ClientOption) ledgerv1connect.LedgerServiceClient {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return ledgerv1connect.NewLedgerServiceClient(hc, base, append([]connect.ClientOption{plinth.WithAPIKey(key)}, opts...)...)
}

// newGRPCLedgerClient returns a ledger client of the gateway at base that
// speaks gRPC over h2c (HTTP/2 without TLS), on a connection of its own.
func newGRPCLedgerClient(base, key string) ledgerv1connect.LedgerServiceClient {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: p}}
	return ledgerv1connect.NewLedgerServiceClient(hc, base, plinth.WithAPIKey(key), connect.WithGRPC())
}

// faultBooks is a set of ledger accounts for a fault test: one
// unrestricted settlement account and customer accounts that may not go
// below zero, each funded from the settlement account.
type faultBooks struct {
	currency   string
	settlement string
	customers  []string
	funding    []*keyedTransfer
}

// openBooks opens the settlement account and n customer accounts and funds
// each customer account with amount.
func openBooks(t *testing.T, client ledgerv1connect.LedgerServiceClient, n int, amount int64) *faultBooks {
	t.Helper()
	b := &faultBooks{currency: "EUR"}
	b.settlement = openAccount(t, client, b.currency, ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED)
	b.open(t, client, n, amount)
	return b
}

// open opens n more customer accounts, funds each with amount, and returns
// them.
func (b *faultBooks) open(t *testing.T, client ledgerv1connect.LedgerServiceClient, n int, amount int64) []string {
	t.Helper()
	var opened []string
	for range n {
		a := openAccount(t, client, b.currency, ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
		k := &keyedTransfer{key: "fund-" + plinth.NewIdempotencyKey(), req: &ledgerv1.MoveMoneyRequest{
			Currency: b.currency, Legs: []*ledgerv1.Leg{{FromAccountId: b.settlement, ToAccountId: a, Amount: amount}}}}
		if !k.send(context.Background(), client) || k.code != 0 {
			t.Fatalf("funding %s: code %v", a, k.code)
		}
		b.funding = append(b.funding, k)
		opened = append(opened, a)
	}
	b.customers = append(b.customers, opened...)
	return opened
}

func openAccount(t *testing.T, client ledgerv1connect.LedgerServiceClient, currency string, policy ledgerv1.BalancePolicy) string {
	t.Helper()
	req := connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: currency, BalancePolicy: policy})
	req.Header().Set("Idempotency-Key", plinth.NewIdempotencyKey())
	res, err := client.OpenLedgerAccount(context.Background(), req)
	if err != nil {
		t.Fatalf("open a ledger account: %v", err)
	}
	return res.Msg.GetAccount().GetId()
}

// moves plans n random movements among the customer accounts, keyed
// prefix-0, prefix-1...; some will be refused for funds, and refusals are
// answers too.
func (b *faultBooks) moves(rng *rand.Rand, prefix string, n int) []*keyedTransfer {
	var out []*keyedTransfer
	for i := range n {
		from := b.customers[rng.IntN(len(b.customers))]
		to := b.customers[rng.IntN(len(b.customers))]
		for to == from {
			to = b.customers[rng.IntN(len(b.customers))]
		}
		out = append(out, &keyedTransfer{key: fmt.Sprintf("%s-%d", prefix, i), req: &ledgerv1.MoveMoneyRequest{
			Currency: b.currency, Legs: []*ledgerv1.Leg{{FromAccountId: from, ToAccountId: to, Amount: int64(1 + rng.IntN(2_000))}}}})
	}
	return out
}

// sendUntilAnswered sends k, with its key, until it gets a final answer,
// waiting a little between attempts, for at most limit. It returns the
// codes of the attempts that were not answered, and whether the answer was
// a replay (Idempotent-Replayed: the transfer had been made, or refused,
// before).
func sendUntilAnswered(t *testing.T, client ledgerv1connect.LedgerServiceClient, k *keyedTransfer, limit time.Duration) (failures []connect.Code, replayed bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req := connect.NewRequest(k.req)
		req.Header().Set("Idempotency-Key", k.key)
		res, err := client.MoveMoney(ctx, req)
		cancel()
		if k.record(res, err) {
			var ce *connect.Error
			if errors.As(err, &ce) {
				return failures, ce.Meta().Get("Idempotent-Replayed") == "true"
			}
			return failures, res != nil && res.Header().Get("Idempotent-Replayed") == "true"
		}
		failures = append(failures, connect.CodeOf(err))
		if time.Now().After(deadline) {
			t.Errorf("%s got no answer in %v; the last attempt: %v", k.key, limit, err)
			return failures, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// record notes the outcome of one attempt of k, as send does, and
// reports whether it was a final answer.
func (k *keyedTransfer) record(res *connect.Response[ledgerv1.MoveMoneyResponse], err error) bool {
	// send makes the call itself; this replays its bookkeeping on an
	// outcome obtained otherwise (over another client, at a chosen moment).
	return k.send(context.Background(), answered{res: res, err: err})
}

// answered is a LedgerServiceClient whose MoveMoney returns a given
// outcome, so that keyedTransfer.send can record an outcome the test
// obtained itself.
type answered struct {
	ledgerv1connect.LedgerServiceClient
	res *connect.Response[ledgerv1.MoveMoneyResponse]
	err error
}

func (a answered) MoveMoney(context.Context, *connect.Request[ledgerv1.MoveMoneyRequest]) (*connect.Response[ledgerv1.MoveMoneyResponse], error) {
	return a.res, a.err
}

// checkLedger checks, through the gateway's client, what
// TestLedgerSurvivesSIGKILL checks once every transfer was answered: no
// retry got another answer than the first; every transfer a client was
// told of (the books' funding and transfers) is in the ledger exactly once
// and no other transfer is; the balances sum to zero, no customer account
// is below zero, and each account's entries add up to its balance.
func checkLedger(t *testing.T, client ledgerv1connect.LedgerServiceClient, b *faultBooks, transfers []*keyedTransfer) {
	t.Helper()
	ctx := context.Background()
	want := map[string]bool{}
	accepted := 0
	for _, k := range append(append([]*keyedTransfer{}, b.funding...), transfers...) {
		switch {
		case !k.answered:
			t.Errorf("%s was never answered", k.key)
		case k.mismatch != "":
			t.Errorf("%s: a retry got another answer: %s", k.key, k.mismatch)
		case k.code == 0:
			if want[k.transferID] {
				t.Errorf("two keys got transfer %s", k.transferID)
			}
			want[k.transferID] = true
			accepted++
		}
	}
	got := map[string]int{}
	for tr, err := range plinth.Paginate(ctx, func(ctx context.Context, token string) ([]*ledgerv1.Transfer, string, error) {
		page, err := client.ListTransfers(ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{PageSize: 200, PageToken: token}))
		if err != nil {
			return nil, "", err
		}
		return page.Msg.GetTransfers(), page.Msg.GetNextPageToken(), nil
	}) {
		if err != nil {
			t.Fatalf("list transfers: %v", err)
		}
		got[tr.GetId()]++
	}
	if len(got) != len(want) {
		t.Errorf("the ledger holds %d transfers, the clients were told of %d", len(got), len(want))
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("transfer %s is in the ledger %d times", id, got[id])
		}
	}

	var sum int64
	for _, id := range append([]string{b.settlement}, b.customers...) {
		res, err := client.GetLedgerAccount(ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: id}))
		if err != nil {
			t.Fatalf("get ledger account %s: %v", id, err)
		}
		a := res.Msg.GetAccount()
		sum += a.GetPostedBalance()
		if id != b.settlement && a.GetPostedBalance() < 0 {
			t.Errorf("account %s is below zero: %d", id, a.GetPostedBalance())
		}
		var entries int64
		for e, err := range plinth.Paginate(ctx, func(ctx context.Context, token string) ([]*ledgerv1.Entry, string, error) {
			page, err := client.ListAccountEntries(ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: id, PageSize: 200, PageToken: token}))
			if err != nil {
				return nil, "", err
			}
			return page.Msg.GetEntries(), page.Msg.GetNextPageToken(), nil
		}) {
			if err != nil {
				t.Fatalf("list the entries of %s: %v", id, err)
			}
			entries += e.GetAmount()
		}
		if entries != a.GetPostedBalance() {
			t.Errorf("account %s: entries sum to %d, balance is %d", id, entries, a.GetPostedBalance())
		}
	}
	if sum != 0 {
		t.Errorf("balances sum to %d, want 0", sum)
	}
	t.Logf("ledger checked: %d transfers accepted, each exactly once; %d keys in all; balances sum to zero", accepted, len(b.funding)+len(transfers))
}

// codeCounts counts the codes of unanswered attempts, safe for workers to
// share.
type codeCounts struct {
	mu sync.Mutex
	n  map[connect.Code]int
}

func (c *codeCounts) add(codes ...connect.Code) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[connect.Code]int{}
	}
	for _, code := range codes {
		c.n[code]++
	}
}

func (c *codeCounts) get(code connect.Code) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[code]
}

// only fails the test for every code counted that is not one of allowed.
func (c *codeCounts) only(t *testing.T, what string, allowed ...connect.Code) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for code, n := range c.n {
		ok := false
		for _, a := range allowed {
			ok = ok || code == a
		}
		if !ok {
			t.Errorf("%s: %d attempt(s) failed with %v; only %v are expected", what, n, code, allowed)
		}
	}
}

func (c *codeCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

// noPanics fails the test if the gateway's log has a panic or an internal
// error in it.
func noPanics(t *testing.T, g *gatewayProcess) {
	t.Helper()
	logs := g.logs.String()
	for _, bad := range []string{"panic", `"msg":"internal error"`} {
		if strings.Contains(logs, bad) {
			var lines []string
			for line := range strings.Lines(logs) {
				if strings.Contains(line, bad) {
					lines = append(lines, line)
				}
			}
			if len(lines) > 5 {
				lines = lines[:5]
			}
			t.Errorf("the gateway logged %q:\n%s", bad, strings.Join(lines, ""))
		}
	}
}

// lockAccount locks the row of a ledger account in the database, as a
// long transaction would, so that every MoveMoney that touches it waits;
// the returned function releases it (and is safe to call twice).
func lockAccount(t *testing.T, dbURL, accountID string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT FROM ledger.accounts WHERE id = $1 FOR UPDATE`, accountID); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Errorf("release the lock: %v", err)
			}
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// waitForLockWaiters waits until exactly n sessions of the database at
// dbURL wait for the lock of a ledger account (see lockAccount): calls held
// in flight inside the gateway.
func waitForLockWaiters(t *testing.T, dbURL string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var waiting int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%ledger.accounts%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == n {
			return
		}
	}
	t.Fatalf("%d sessions wait for a locked account after 30s, want %d", waiting, n)
}

// refused reports whether err is a refused connection: nothing listens.
func refused(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
