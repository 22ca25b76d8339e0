package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/internal/pgtest"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// TestFaultTwoGateways runs two gateway processes on one PostgreSQL, as
// Plinth scales out behind a load balancer, and sends both the same
// MoveMoney, with the same key, at the same moment, many times over (a
// client whose retry the balancer sent to the other gateway while the first
// call still ran). Each pair is applied exactly once, and both callers get
// the same answer: one gets it first-hand and the other the replay, or the
// other gets Aborted ("still running") and its retry gets the replay. The
// ledger then holds each transfer once, its invariants hold, and the audit
// chain, which both gateways extend, verifies.
func TestFaultTwoGateways(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := faultLedgerEnv(t, dbURL)
	runPlinth(t, env, "migrate", "up") // once, for both
	key := bootstrapKey(t, env)        // once: both know the key
	gateways := []*gatewayProcess{startGateway(t, env), startGateway(t, env)}
	clients := []ledgerv1connect.LedgerServiceClient{newLedgerClient(gateways[0].base, key), newLedgerClient(gateways[1].base, key)}
	books := openBooks(t, clients[0], 6, 3_000) // little: some transfers are refused, and refusals are answers too
	// Each gateway sees every account (they share the database), and each
	// client has a connection open before the race.
	for _, c := range clients {
		for _, a := range books.customers {
			if _, err := c.GetLedgerAccount(context.Background(), connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: a})); err != nil {
				t.Fatal(err)
			}
		}
	}

	type side struct {
		k        *keyedTransfer
		replayed bool
		aborted  int // attempts answered Aborted before the final answer
		other    []connect.Code
	}
	// call sends s's transfer to c until it gets a final answer.
	call := func(c ledgerv1connect.LedgerServiceClient, s *side) {
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			req := connect.NewRequest(s.k.req)
			req.Header().Set("Idempotency-Key", s.k.key)
			res, err := c.MoveMoney(ctx, req)
			cancel()
			if s.k.record(res, err) {
				var ce *connect.Error
				if errors.As(err, &ce) {
					s.replayed = ce.Meta().Get("Idempotent-Replayed") == "true"
				} else if res != nil {
					s.replayed = res.Header().Get("Idempotent-Replayed") == "true"
				}
				return
			}
			if code := connect.CodeOf(err); code == connect.CodeAborted {
				s.aborted++
			} else {
				s.other = append(s.other, code)
			}
			if attempt > 200 {
				return // recorded as unanswered; checked below
			}
			time.Sleep(time.Duration(5+rand.IntN(10)) * time.Millisecond)
		}
	}

	const rounds = 100
	rng := rand.New(rand.NewPCG(9, 9))
	plan := books.moves(rng, "pair", rounds)
	var (
		merged                      []*keyedTransfer
		bothFirstHand, oneAborted   int
		refusedPairs, acceptedPairs int
	)
	for r, k := range plan {
		a := &side{k: &keyedTransfer{key: k.key, req: k.req}}
		b := &side{k: &keyedTransfer{key: k.key, req: k.req}}
		start := make(chan struct{})
		done := make(chan struct{}, 2)
		go func() { <-start; call(clients[0], a); done <- struct{}{} }()
		go func() { <-start; call(clients[1], b); done <- struct{}{} }()
		close(start) // both at once
		<-done
		<-done

		switch {
		case !a.k.answered || !b.k.answered:
			t.Fatalf("round %d: unanswered (gateway 1: %v, gateway 2: %v)", r, a.other, b.other)
		case len(a.other) > 0 || len(b.other) > 0:
			t.Errorf("round %d: attempts failed with %v and %v; only Aborted is expected", r, a.other, b.other)
		case a.k.mismatch != "" || b.k.mismatch != "":
			t.Errorf("round %d: a retry got another answer: %q %q", r, a.k.mismatch, b.k.mismatch)
		case a.k.transferID != b.k.transferID || a.k.code != b.k.code:
			t.Errorf("round %d: the two callers got different answers: transfer %q / %v and transfer %q / %v",
				r, a.k.transferID, a.k.code, b.k.transferID, b.k.code)
		case a.replayed == b.replayed:
			t.Errorf("round %d: replayed %t and %t; want exactly one answer first-hand and the other replayed", r, a.replayed, b.replayed)
		}
		if a.aborted+b.aborted > 0 {
			oneAborted++
		} else {
			bothFirstHand++
		}
		if a.k.code == 0 {
			acceptedPairs++
		} else {
			refusedPairs++
		}
		merged = append(merged, a.k)
	}
	t.Logf("%d rounds: %d answered at once on both gateways (one first-hand, one replayed), %d with an Aborted before the replay; %d transfers accepted, %d refused",
		rounds, bothFirstHand, oneAborted, acceptedPairs, refusedPairs)

	// Counted in the database: one transfer per accepted round, besides the
	// funding.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM ledger.transfers`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	if want := acceptedPairs + len(books.funding); stored != want {
		t.Errorf("the database holds %d transfers, want %d", stored, want)
	}
	checkLedger(t, clients[1], books, merged)

	auditor := auditv1connect.NewAuditServiceClient(&http.Client{}, gateways[0].base, plinth.WithAPIKey(key))
	v, err := auditor.VerifyAuditChain(context.Background(), connect.NewRequest(&auditv1.VerifyAuditChainRequest{}))
	if err != nil || !v.Msg.GetOk() {
		t.Errorf("VerifyAuditChain after both gateways recorded the races: %v, %v", v, err)
	} else {
		t.Logf("audit chain verified: %d records", v.Msg.GetRecordsChecked())
	}
	for i, g := range gateways {
		t.Run(fmt.Sprintf("gateway-%d-log", i+1), func(t *testing.T) { noPanics(t, g) })
		g.stop(t)
	}
}
