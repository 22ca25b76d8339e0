package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
)

// TestFaultSIGTERM stops the gateway with SIGTERM while calls are in
// flight: transfers held inside it (waiting for a row lock that a long
// transaction of the test holds), over HTTP/1.1 and over gRPC on h2c, and
// a load of other transfers. From the signal on, new calls are refused
// cleanly (the connection is refused: Unavailable, at once, never a hang
// or a half-written answer); the held calls are not cut: they finish with
// their transfer once the lock is released, and the process then exits 0
// with "shut down cleanly". After a restart, every transfer, retried with
// its key until answered, is in the ledger exactly once.
func TestFaultSIGTERM(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := faultLedgerEnv(t, dbURL, "PLINTH_LIMITS_SHUTDOWN_TIMEOUT=60s", "PLINTH_LIMITS_REQUEST_TIMEOUT=60s")
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	client := newLedgerClient(g.base, key)
	books := openBooks(t, client, 6, 50_000)
	hot, others := books.customers[0], books.customers[1:]

	// The held calls: each moves money out of the hot account, whose row
	// the test locks, on a client (and connection) of its own.
	release := lockAccount(t, dbURL, hot)
	const held = 8
	type outcome struct {
		k   *keyedTransfer
		res *connect.Response[ledgerv1.MoveMoneyResponse]
		err error
		at  time.Time
	}
	heldDone := make(chan outcome, held)
	var heldCalls []*keyedTransfer
	for i := range held {
		k := &keyedTransfer{key: fmt.Sprintf("held-%d", i), req: &ledgerv1.MoveMoneyRequest{
			Currency: books.currency, Legs: []*ledgerv1.Leg{{FromAccountId: hot, ToAccountId: others[i%len(others)], Amount: 100}}}}
		heldCalls = append(heldCalls, k)
		c := newLedgerClient(g.base, key)
		if i%2 == 1 {
			c = newGRPCLedgerClient(g.base, key)
		}
		go func() {
			req := connect.NewRequest(k.req)
			req.Header().Set("Idempotency-Key", k.key)
			res, err := c.MoveMoney(context.Background(), req)
			heldDone <- outcome{k, res, err, time.Now()}
		}()
	}
	waitForLockWaiters(t, dbURL, held)

	// The load: transfers among the other accounts, without pause.
	rng := rand.New(rand.NewPCG(3, 3))
	var (
		loadMoves   [][]*keyedTransfer
		loadCodes   codeCounts
		loadAnswers atomic.Int64
		wg          sync.WaitGroup
	)
	loadBooks := &faultBooks{currency: books.currency, settlement: books.settlement, customers: others}
	for w := range 4 {
		moves := loadBooks.moves(rng, fmt.Sprintf("load-%d", w), 80)
		loadMoves = append(loadMoves, moves)
		wg.Go(func() {
			for _, k := range moves {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req := connect.NewRequest(k.req)
				req.Header().Set("Idempotency-Key", k.key)
				res, err := client.MoveMoney(ctx, req)
				cancel()
				if k.record(res, err) {
					loadAnswers.Add(1)
					continue
				}
				loadCodes.add(connect.CodeOf(err))
				if refused(err) {
					return // the gateway is gone: the rest are retried after the restart
				}
			}
		})
	}
	for loadAnswers.Load() < 40 {
		time.Sleep(5 * time.Millisecond)
	}

	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()

	// New calls are refused, promptly, once the listener is closed. Each
	// probe dials anew: a connection kept alive from before is closed by
	// the gateway when idle, and a call sent on it as it closes gets
	// Unavailable too (see the load below), but not "refused". So may a
	// probe whose connection the kernel accepted just before the listener
	// closed: it is reset, unread. Neither ran anything.
	var probes []string
	for {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := newLedgerClient(g.base, key).GetLedgerAccount(ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: books.settlement}))
		cancel()
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("a call during the shutdown took %v: %v", took, err)
		}
		// connect-go names a reset unavailable or, when the reset comes
		// while it reads the answer, canceled: either way nothing ran.
		if err != nil && connect.CodeOf(err) != connect.CodeUnavailable && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("a call after SIGTERM: %v; want unavailable or a reset connection (probes before: %v)", err, probes)
		}
		if refused(err) {
			break
		}
		if err != nil {
			probes = append(probes, err.Error())
		} else {
			probes = append(probes, "ok")
		}
		if time.Since(signalled) > 10*time.Second {
			t.Fatalf("the gateway still accepts connections 10s after SIGTERM (probes: %v)", probes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("probes after SIGTERM until one was refused: %v", probes)
	if conn, err := net.DialTimeout("tcp", g.base[len("http://"):], 5*time.Second); err == nil {
		conn.Close()
		t.Error("the gateway's port still accepts connections after SIGTERM")
	}
	_, err := newGRPCLedgerClient(g.base, key).GetLedgerAccount(context.Background(),
		connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: books.settlement}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("a gRPC call after SIGTERM: %v; want unavailable", err)
	}
	wg.Wait() // the load ends at its first refused call
	t.Logf("load before the shutdown: %d transfers answered; failed attempts: %v", loadAnswers.Load(), &loadCodes)
	loadCodes.only(t, "the load around SIGTERM", connect.CodeUnavailable)

	// The held calls are still in flight, and the process still runs.
	select {
	case o := <-heldDone:
		t.Fatalf("a held call ended before its lock was released: %v", o.err)
	case err := <-g.exited:
		t.Fatalf("the gateway exited (%v) with calls in flight; its log:\n%s", err, g.logs)
	case <-time.After(500 * time.Millisecond):
	}
	released := time.Now()
	release()
	for range held {
		select {
		case o := <-heldDone:
			if o.err != nil || !o.k.record(o.res, o.err) || o.k.code != 0 {
				t.Errorf("held call %s after SIGTERM: %v; want its transfer", o.k.key, o.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the held calls did not finish within 30s of the lock's release")
		}
	}
	select {
	case err := <-g.exited:
		if err != nil {
			t.Fatalf("plinth serve exited with %v after SIGTERM; its log:\n%s", err, g.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("plinth serve did not exit within 30s of its last call")
	}
	if !strings.Contains(g.logs.String(), "shut down cleanly") {
		t.Errorf("no clean shutdown in the log:\n%s", g.logs)
	}
	t.Logf("SIGTERM, then %v until the held calls could go on; all %d finished with their transfer and the process exited 0",
		released.Sub(signalled).Round(time.Millisecond), held)
	noPanics(t, g)

	// Restarted: the unanswered load is retried with its keys; the ledger
	// holds each transfer once.
	g = startGateway(t, env)
	client = newLedgerClient(g.base, key)
	all := append([]*keyedTransfer{}, heldCalls...)
	for _, ks := range loadMoves {
		for _, k := range ks {
			if !k.answered {
				if codes, _ := sendUntilAnswered(t, client, k, 20*time.Second); len(codes) > 0 {
					t.Errorf("%s after the restart: %v", k.key, codes)
				}
			}
			all = append(all, k)
		}
	}
	checkLedger(t, client, books, all)
	g.stop(t)
}
