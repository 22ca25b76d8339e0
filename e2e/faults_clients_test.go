package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/internal/pgtest"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
)

// Limits of the gateway of TestFaultClients: small, so that the test
// trips them quickly.
const (
	clientsReadHeaderTimeout = 1 * time.Second
	clientsRequestTimeout    = 3 * time.Second
	clientsMaxRequestBytes   = 64 << 10
)

// TestFaultClients sends the gateway clients that misbehave or give up, each
// alongside calls that behave, and checks that it bounds what each costs,
// answers clearly, applies no transfer twice, and keeps serving:
//
//   - slow-headers: a client that sends its headers a byte at a time is cut
//     off by limits.read_header_timeout;
//   - trickled-body: a client that sends its body a byte at a time is cut
//     off by limits.request_timeout;
//   - oversized-body: a body over limits.max_request_bytes gets
//     ResourceExhausted, with a message that says the limit, at once
//     (with or without Content-Length, Connect or gRPC), and the next call
//     on the same client is served;
//   - deadline: a transfer whose caller's deadline (Connect-Timeout-Ms,
//     grpc-timeout) runs out while it waits gets DeadlineExceeded, and a
//     retry with its key later applies it exactly once;
//   - disconnect: a caller that gives up on a transfer in flight (cancels:
//     the connection is closed) leaves it applied once or not at all, and a
//     retry with its key gets its one answer; likewise for a load of
//     transfers cancelled at random moments.
//
// The gateway logs no panic and no internal error, and the ledger's
// invariants hold at the end.
func TestFaultClients(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := faultLedgerEnv(t, dbURL,
		fmt.Sprintf("PLINTH_LIMITS_READ_HEADER_TIMEOUT=%v", clientsReadHeaderTimeout),
		fmt.Sprintf("PLINTH_LIMITS_REQUEST_TIMEOUT=%v", clientsRequestTimeout),
		fmt.Sprintf("PLINTH_LIMITS_MAX_REQUEST_BYTES=%d", clientsMaxRequestBytes),
	)
	runPlinth(t, env, "migrate", "up")
	key := bootstrapKey(t, env)
	g := startGateway(t, env)
	client := newLedgerClient(g.base, key)
	books := openBooks(t, client, 6, 50_000)
	addr := strings.TrimPrefix(g.base, "http://")
	var transfers []*keyedTransfer // every keyed transfer of the subtests, for the final check

	// While the subtests misbehave, a well-behaved caller reads on: every
	// one of its calls must be answered, promptly.
	stopReader := make(chan struct{})
	var readerWG sync.WaitGroup
	var readerErrs codeCounts
	readerWG.Go(func() {
		for {
			select {
			case <-stopReader:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := client.GetLedgerAccount(ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: books.settlement}))
			cancel()
			if err != nil {
				readerErrs.add(connect.CodeOf(err))
			}
		}
	})

	t.Run("slow-headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		closed := make(chan string, 1)
		go func() {
			// Whatever the gateway sends before it closes (Go's server
			// answers 400 Bad Request here), then the end of the connection.
			b, err := io.ReadAll(conn)
			first, _, _ := strings.Cut(string(b), "\r\n")
			closed <- fmt.Sprintf("%q, then %v", first, err)
		}()
		head := "POST /plinth.ledger.v1.LedgerService/GetLedgerAccount HTTP/1.1\r\nHost: plinth\r\nX-Slow: " + strings.Repeat("a", 200)
		for i := 0; ; i++ {
			select {
			case got := <-closed:
				took := time.Since(start)
				t.Logf("a client sending its headers a byte every 100ms was cut off after %v (%d bytes sent): %s", took.Round(time.Millisecond), i, got)
				if took < clientsReadHeaderTimeout/2 || took > clientsReadHeaderTimeout+10*time.Second {
					t.Errorf("cut off after %v; limits.read_header_timeout is %v", took, clientsReadHeaderTimeout)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
			if i >= len(head) {
				t.Fatalf("the gateway read headers for %v without cutting the client off", time.Since(start))
			}
			if _, err := conn.Write([]byte{head[i]}); err != nil {
				t.Logf("cut off after %v: write: %v", time.Since(start), err)
				return
			}
		}
	})

	t.Run("trickled-body", func(t *testing.T) {
		body := `{"accountId": "` + books.settlement + `"}` + strings.Repeat(" ", 200)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		head := "POST /plinth.ledger.v1.LedgerService/GetLedgerAccount HTTP/1.1\r\nHost: plinth\r\n" +
			"Content-Type: application/json\r\nAuthorization: Bearer " + key + "\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		answer := make(chan string, 1)
		go func() {
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				answer <- "no answer: " + err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			answer <- res.Status + " " + string(b)
		}()
		for i := 0; ; i++ {
			select {
			case got := <-answer:
				took := time.Since(start)
				t.Logf("a client sending its body a byte every 100ms was cut off after %v (%d of %d bytes sent): %s", took.Round(time.Millisecond), i, len(body), got)
				if took > clientsRequestTimeout+10*time.Second {
					t.Errorf("cut off after %v; limits.request_timeout is %v", took, clientsRequestTimeout)
				}
				if !strings.HasPrefix(got, "no answer") && !strings.Contains(got, `"code":"deadline_exceeded"`) {
					t.Errorf("the answer to a trickled body: %s; want deadline_exceeded, or none", got)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
			if i >= len(body) {
				t.Fatalf("the gateway read a body for %v (limits.request_timeout is %v) without cutting the client off", time.Since(start), clientsRequestTimeout)
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				t.Logf("cut off after %v: write: %v", time.Since(start), err)
				select {
				case got := <-answer:
					t.Logf("its answer: %s", got)
				case <-time.After(5 * time.Second):
				}
				return
			}
		}
	})

	t.Run("oversized-body", func(t *testing.T) {
		big := strings.Repeat("x", 4*clientsMaxRequestBytes)
		body := `{"currency": "EUR", "balancePolicy": "BALANCE_POLICY_UNRESTRICTED", "description": "` + big + `"}`
		for _, chunked := range []bool{false, true} {
			var r io.Reader = strings.NewReader(body)
			if chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, g.base+"/plinth.ledger.v1.LedgerService/OpenLedgerAccount", r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Idempotency-Key", "oversized")
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			res, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err != nil {
				cancel()
				t.Fatalf("oversized body (chunked %t): %v", chunked, err)
			}
			var e struct{ Code, Message string }
			err = json.NewDecoder(res.Body).Decode(&e)
			res.Body.Close()
			cancel()
			t.Logf("oversized body (chunked %t): %s in %v: %s", chunked, res.Status, time.Since(start).Round(time.Millisecond), e.Message)
			if err != nil || e.Code != "resource_exhausted" || !strings.Contains(e.Message, fmt.Sprint(clientsMaxRequestBytes)) {
				t.Errorf("oversized body (chunked %t): %s %+v %v; want resource_exhausted naming the limit %d", chunked, res.Status, e, err, clientsMaxRequestBytes)
			}
		}
		for _, c := range []struct {
			name   string
			client interface {
				OpenLedgerAccount(context.Context, *connect.Request[ledgerv1.OpenLedgerAccountRequest]) (*connect.Response[ledgerv1.OpenLedgerAccountResponse], error)
			}
		}{{"connect", newLedgerClient(g.base, key)}, {"grpc", newGRPCLedgerClient(g.base, key)}} {
			req := connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: "EUR", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED, Description: big})
			req.Header().Set("Idempotency-Key", "oversized-"+c.name)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, err := c.client.OpenLedgerAccount(ctx, req)
			cancel()
			if connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Errorf("oversized %s request: %v; want resource_exhausted", c.name, err)
			}
			// The same client goes on.
			req = connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: "EUR", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED})
			req.Header().Set("Idempotency-Key", "after-oversized-"+c.name)
			ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
			_, err = c.client.OpenLedgerAccount(ctx, req)
			cancel()
			if err != nil {
				t.Errorf("%s: the call after an oversized one: %v", c.name, err)
			}
		}
	})

	t.Run("deadline", func(t *testing.T) {
		hot := books.customers[0]
		release := lockAccount(t, dbURL, hot)
		move := func(name string) *keyedTransfer {
			return &keyedTransfer{key: "deadline-" + name, req: &ledgerv1.MoveMoneyRequest{
				Currency: books.currency, Legs: []*ledgerv1.Leg{{FromAccountId: hot, ToAccountId: books.customers[1], Amount: 10}}}}
		}
		// Connect: the deadline in the Connect-Timeout-Ms header, and none
		// in the client, so that the answer is the gateway's.
		viaConnect := move("connect")
		req, err := http.NewRequest(http.MethodPost, g.base+"/plinth.ledger.v1.LedgerService/MoveMoney",
			strings.NewReader(`{"currency": "EUR", "legs": [{"fromAccountId": "`+hot+`", "toAccountId": "`+books.customers[1]+`", "amount": 10}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Idempotency-Key", viaConnect.key)
		req.Header.Set("Connect-Timeout-Ms", "300")
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Code, Message string }
		err = json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		t.Logf("Connect-Timeout-Ms 300 on a transfer held by a lock: %s after %v: %+v", res.Status, time.Since(start).Round(time.Millisecond), e)
		if err != nil || e.Code != "deadline_exceeded" {
			t.Errorf("Connect-Timeout-Ms 300 on a held transfer: %s %+v %v; want deadline_exceeded", res.Status, e, err)
		}
		// gRPC: the client's deadline, sent as grpc-timeout.
		viaGRPC := move("grpc")
		grpcReq := connect.NewRequest(viaGRPC.req)
		grpcReq.Header().Set("Idempotency-Key", viaGRPC.key)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err = newGRPCLedgerClient(g.base, key).MoveMoney(ctx, grpcReq)
		cancel()
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			t.Errorf("a gRPC deadline of 300ms on a held transfer: %v; want deadline_exceeded", err)
		}
		// A tiny deadline on a transfer that nothing holds: answered or
		// out of time, either is fine; the retry settles it.
		tiny := move("tiny")
		tiny.req.Legs[0].FromAccountId = books.customers[2]
		tinyReq := connect.NewRequest(tiny.req)
		tinyReq.Header().Set("Idempotency-Key", tiny.key)
		tinyReq.Header().Set("Connect-Timeout-Ms", "1")
		_, err = newLedgerClient(g.base, key).MoveMoney(context.Background(), tinyReq)
		t.Logf("Connect-Timeout-Ms 1: %v", err)
		if code := connect.CodeOf(err); err != nil && code != connect.CodeDeadlineExceeded {
			t.Errorf("Connect-Timeout-Ms 1: %v; want success or deadline_exceeded", err)
		}

		waitForLockWaiters(t, dbURL, 0)
		release()
		// Later, without a deadline: each applies once.
		for _, k := range []*keyedTransfer{viaConnect, viaGRPC, tiny} {
			sendUntilAnswered(t, client, k, 10*time.Second)
			if _, replayed := sendUntilAnswered(t, client, k, 10*time.Second); !replayed {
				t.Errorf("%s: a second retry was not answered with a replay", k.key)
			}
			if k.code != 0 {
				t.Errorf("%s: %v; want its transfer", k.key, k.code)
			}
			transfers = append(transfers, k)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		hot := books.customers[3]
		release := lockAccount(t, dbURL, hot)
		k := &keyedTransfer{key: "disconnect-held", req: &ledgerv1.MoveMoneyRequest{
			Currency: books.currency, Legs: []*ledgerv1.Leg{{FromAccountId: hot, ToAccountId: books.customers[4], Amount: 10}}}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			req := connect.NewRequest(k.req)
			req.Header().Set("Idempotency-Key", k.key)
			_, err := newLedgerClient(g.base, key).MoveMoney(ctx, req)
			done <- err
		}()
		waitForLockWaiters(t, dbURL, 1)
		cancel() // the caller gives up: its connection is closed
		if err := <-done; connect.CodeOf(err) != connect.CodeCanceled {
			t.Errorf("the cancelled call: %v", err)
		}
		// The gateway gives up too: the transfer stops waiting.
		waitForLockWaiters(t, dbURL, 0)
		release()
		// Nothing of it was applied: the retry runs it, once.
		if _, replayed := sendUntilAnswered(t, client, k, 10*time.Second); replayed || k.code != 0 {
			t.Errorf("the retry of a call given up on while it waited: replayed %t, code %v; want its transfer, made now", replayed, k.code)
		}
		transfers = append(transfers, k)

		// A load of transfers, each first sent by a caller that gives up
		// after a random moment, then retried with its key. They move money
		// among accounts of their own, many, so that they seldom wait for
		// one another: a call given up on holds its locks until PostgreSQL
		// has cancelled its statement, which takes a while.
		rng := rand.New(rand.NewPCG(5, 5))
		spread := &faultBooks{currency: books.currency, customers: books.open(t, client, 24, 50_000)}
		var (
			wg        sync.WaitGroup
			cancelled sync.Map
			all       [][]*keyedTransfer
		)
		for w := range 3 {
			moves := spread.moves(rng, fmt.Sprintf("disconnect-%d", w), 40)
			all = append(all, moves)
			delays := make([]time.Duration, len(moves))
			for i := range delays {
				delays[i] = time.Duration(rng.IntN(150_000)) * time.Microsecond
			}
			wg.Go(func() {
				c := newLedgerClient(g.base, key)
				for i, k := range moves {
					// Cancelled, not a deadline: the gateway learns of it
					// only from the closed connection.
					ctx, cancel := context.WithCancel(context.Background())
					timer := time.AfterFunc(delays[i], cancel)
					req := connect.NewRequest(k.req)
					req.Header().Set("Idempotency-Key", k.key)
					res, err := c.MoveMoney(ctx, req)
					timer.Stop()
					cancel()
					if !k.record(res, err) {
						cancelled.Store(k.key, connect.CodeOf(err))
					}
				}
			})
		}
		wg.Wait()
		n, applied := 0, 0
		cancelled.Range(func(_, code any) bool {
			if c := code.(connect.Code); c != connect.CodeCanceled && c != connect.CodeAborted {
				t.Errorf("a call given up on: %v", c)
			}
			n++
			return true
		})
		for _, ks := range all {
			for _, k := range ks {
				_, wasGivenUp := cancelled.Load(k.key)
				if _, replayed := sendUntilAnswered(t, client, k, 10*time.Second); replayed && wasGivenUp {
					applied++
				}
				transfers = append(transfers, k)
			}
		}
		t.Logf("%d of %d transfers given up on by their caller before an answer, %d of them applied all the same (their retry was a replay), the others not at all; all retried with their key",
			n, 3*40, applied)
	})

	close(stopReader)
	readerWG.Wait()
	readerErrs.only(t, "a well-behaved reader beside them")
	// The gateway still serves, and kept its books.
	checkLedger(t, client, books, transfers)
	noPanics(t, g)
	g.stop(t)
}
