package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
)

// TestFaultPostgresRestart stops PostgreSQL, as a crash would, twice in the
// middle of a load of keyed transfers, and starts it again, under one
// gateway that is never restarted: while the database is down every call
// fails with Unavailable (not Internal) and /readyz says so; once it is
// back the gateway's pool reconnects by itself, and every transfer, retried
// with its key until answered, is in the ledger exactly once, with the
// ledger's invariants holding.
func TestFaultPostgresRestart(t *testing.T) {
	pg := pgtest.NewServer(t) // of its own: stopping it disturbs no other test
	env := faultLedgerEnv(t, pg.URL(), "PLINTH_LIMITS_REQUEST_TIMEOUT=10s")
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	client := newLedgerClient(g.base, key)
	books := openBooks(t, client, 6, 50_000)

	const workers, perWorker = 6, 50
	rng := rand.New(rand.NewPCG(11, 11))
	moves := make([][]*keyedTransfer, workers)
	for w := range workers {
		moves[w] = books.moves(rng, fmt.Sprintf("pg-%d", w), perWorker)
	}

	// The workers send their transfers one after another, each retried
	// with its key until answered; the codes of unanswered attempts are
	// counted, split by whether the database was down when they failed.
	var (
		answered       atomic.Int64
		down           atomic.Bool
		whileDown      codeCounts
		whileUp        codeCounts
		downFailures   atomic.Int64
		slowestAnswer  atomic.Int64
		wg             sync.WaitGroup
		stopEverything = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			for _, k := range moves[w] {
				start := time.Now()
				for {
					select {
					case <-stopEverything:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					req := connect.NewRequest(k.req)
					req.Header().Set("Idempotency-Key", k.key)
					wasDown := down.Load()
					res, err := client.MoveMoney(ctx, req)
					cancel()
					if k.record(res, err) {
						break
					}
					if wasDown && down.Load() {
						whileDown.add(connect.CodeOf(err))
						downFailures.Add(1)
					} else {
						// Around a stop or a start: what the call met is
						// not known, but it must still be retryable.
						whileUp.add(connect.CodeOf(err))
					}
					time.Sleep(25 * time.Millisecond)
				}
				answered.Add(1)
				slowestAnswer.Store(max(slowestAnswer.Load(), int64(time.Since(start))))
			}
		})
	}
	defer func() { close(stopEverything); wg.Wait() }()

	waitAnswered := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); answered.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d transfers answered after 60s, want %d", answered.Load(), n)
			}
		}
	}
	total := int64(workers * perWorker)
	for cycle, at := range []int64{total / 4, total / 2} {
		waitAnswered(at)
		down.Store(true)
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		stoppedAt := answered.Load()
		// Down: calls fail, with Unavailable, until it is back.
		for deadline := time.Now().Add(20 * time.Second); downFailures.Load() < 2*workers; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("outage %d: only %d calls failed in 20s with PostgreSQL down", cycle+1, downFailures.Load())
			}
		}
		_, err := client.GetLedgerAccount(context.Background(), connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: books.settlement}))
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("outage %d: a read with PostgreSQL down: %v, want unavailable", cycle+1, err)
		}
		if res, err := http.Get(g.base + "/readyz"); err != nil || res.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("outage %d: /readyz with PostgreSQL down: %v, %v; want 503", cycle+1, res, err)
		} else {
			res.Body.Close()
		}
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		down.Store(false)
		// Back: the same gateway answers again, without being told.
		waitAnswered(stoppedAt + workers)
		t.Logf("outage %d: PostgreSQL stopped after %d answers and started again; the gateway answers again", cycle+1, stoppedAt)
	}
	waitAnswered(total)
	wg.Wait()
	t.Logf("slowest transfer, retries included: %v; failed attempts while down: %v; around the stops and starts: %v",
		time.Duration(slowestAnswer.Load()).Round(time.Millisecond), &whileDown, &whileUp)

	whileDown.only(t, "with PostgreSQL down", connect.CodeUnavailable)
	// Around a stop a call may also lose a race for its key with its own
	// retry, which the gateway answers Aborted (retry shortly).
	whileUp.only(t, "around the stops and starts", connect.CodeUnavailable, connect.CodeAborted)
	if res, err := http.Get(g.base + "/readyz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("/readyz once PostgreSQL is back: %v, %v", res, err)
	} else {
		res.Body.Close()
	}

	// A retry of every fifth transfer, with its key, gets the same answer.
	var all []*keyedTransfer
	for _, ks := range moves {
		for i, k := range ks {
			if i%5 == 0 {
				sendUntilAnswered(t, client, k, 10*time.Second)
			}
			all = append(all, k)
		}
	}
	checkLedger(t, client, books, all)
	noPanics(t, g)
	g.stop(t)
}
