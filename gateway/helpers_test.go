package gateway_test

// What every gateway test shares: a gateway started on a real listener with
// its log in a buffer, HTTP/1.1 and h2c clients, and customers backends that
// misbehave on purpose.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	_ "plinth.dev/plinth/capabilities/all" // every domain and backend, as the binary has them
	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/customers/memory"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway"
)

// syncBuffer is a bytes.Buffer that the server's goroutines and the test
// may use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logRecord is one JSON line of the gateway's log.
type logRecord map[string]any

func (r logRecord) str(key string) string {
	s, _ := r[key].(string)
	return s
}

// testServer is a gateway serving on 127.0.0.1 for the length of a test.
type testServer struct {
	key  string // the admin principal's API key
	URL  string
	Addr string
	logs *syncBuffer

	// h1 speaks HTTP/1.1 only; h2c speaks HTTP/2 without TLS only, as gRPC
	// clients do.
	h1, h2c *http.Client

	stopOnce sync.Once
	cancel   context.CancelFunc
	served   chan error
	serveErr error
}

// serverOption adjusts a test server's configuration, or the context its
// backends are opened with.
type serverOption func(*gateway.Config, *context.Context)

func withBackend(name string) serverOption {
	return func(cfg *gateway.Config, _ *context.Context) { cfg.Backends["customers"] = name }
}

func withLogLevel(level slog.Level) serverOption {
	return func(_ *gateway.Config, ctx *context.Context) {
		*ctx = context.WithValue(*ctx, logLevelKey{}, level)
	}
}

func withConfig(change func(*gateway.Config)) serverOption {
	return func(cfg *gateway.Config, _ *context.Context) { change(cfg) }
}

// withSlowHooks hands the testslow backend the channels it signals on.
func withSlowHooks(h *slowHooks) serverOption {
	return func(_ *gateway.Config, ctx *context.Context) {
		*ctx = context.WithValue(*ctx, slowHooksKey{}, h)
	}
}

type logLevelKey struct{}

// testConfig is the default configuration with limits that suit tests.
func testConfig() gateway.Config {
	cfg := gateway.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Limits.ShutdownTimeout = gateway.Duration(5 * time.Second)
	cfg.Limits.RequestTimeout = gateway.Duration(10 * time.Second)
	return cfg
}

// startServer starts a gateway on a fresh port and stops it (and checks that
// Serve returned nil) when the test ends.
func startServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	cfg := testConfig()
	ctx := t.Context()
	for _, o := range opts {
		o(&cfg, &ctx)
	}
	level, ok := ctx.Value(logLevelKey{}).(slog.Level)
	if !ok {
		level = slog.LevelInfo
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))

	srv, err := gateway.New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	adminKey, err := srv.Bootstrap(ctx)
	if err != nil || adminKey == "" {
		srv.Close()
		t.Fatalf("Bootstrap = %q, %v; want the admin key of a fresh gateway", adminKey, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		key:    adminKey,
		URL:    "http://" + ln.Addr().String(),
		Addr:   ln.Addr().String(),
		logs:   logs,
		h1:     newH1Client(),
		h2c:    newH2CClient(),
		cancel: cancel,
		served: make(chan error, 1),
	}
	go func() { ts.served <- srv.Serve(serveCtx, ln) }()
	t.Cleanup(func() {
		ts.h1.CloseIdleConnections()
		ts.h2c.CloseIdleConnections()
		if err := ts.stop(); err != nil {
			t.Errorf("Serve returned %v, want nil after a graceful shutdown", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return ts
}

// stop cancels Serve's context and returns what Serve returned; it may be
// called more than once.
func (ts *testServer) stop() error {
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case ts.serveErr = <-ts.served:
		case <-time.After(10 * time.Second):
			ts.serveErr = errors.New("Serve did not return within 10s of its context ending")
		}
	})
	return ts.serveErr
}

// records parses the log, one JSON object per line.
func (ts *testServer) records(t *testing.T) []logRecord {
	t.Helper()
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(ts.logs.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// accessLog returns the access-log line ("call") of a request id, or nil.
// The line is written before the response, so it is there once the caller
// has its answer.
func (ts *testServer) accessLog(t *testing.T, requestID string) logRecord {
	t.Helper()
	var found logRecord
	for _, r := range ts.records(t) {
		if r.str("msg") == "call" && r.str("request_id") == requestID {
			if found != nil {
				t.Errorf("two access-log lines for request id %s", requestID)
			}
			found = r
		}
	}
	return found
}

func newH1Client() *http.Client {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 15 * time.Second}
}

func newH2CClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 15 * time.Second}
}

// The misbehaving customers backends. Each wraps a fresh memory store, so
// that what it does not break behaves as the real thing.
func init() {
	register := func(name string, open func(ctx context.Context, inner customers.Store) customers.Store) {
		registry.RegisterBackend(registry.Backend{
			Domain: "customers",
			Name:   name,
			Open: func(ctx context.Context, _ registry.Env) (any, error) {
				return open(ctx, memory.New()), nil
			},
		})
	}
	register("testpanic", func(_ context.Context, inner customers.Store) customers.Store {
		return panickingStore{inner}
	})
	register("testslow", func(ctx context.Context, inner customers.Store) customers.Store {
		h, _ := ctx.Value(slowHooksKey{}).(*slowHooks)
		return slowStore{Store: inner, hooks: h}
	})
	register("testblock", func(_ context.Context, inner customers.Store) customers.Store {
		return blockingStore{inner}
	})
	register("testdown", func(_ context.Context, inner customers.Store) customers.Store {
		return downStore{inner}
	})
	register("testbroken", func(_ context.Context, inner customers.Store) customers.Store {
		return brokenStore{inner}
	})
}

// panicSecret is what the panicking store's panic says: it must reach the
// log and never the caller.
const panicSecret = "pq: password authentication failed for user plinth password=hunter2-s3cr3t"

// panickingStore panics in Get.
type panickingStore struct{ customers.Store }

func (panickingStore) Get(context.Context, string) (customers.Customer, error) {
	panic(errors.New(panicSecret))
}

// slowHooks tell a test when the slow store's Create has started and when
// it has finished.
type slowHooks struct {
	started  chan struct{} // closed when Create starts
	finished chan struct{} // closed when Create has stored the customer
}

type slowHooksKey struct{}

// slowCreate is how long the slow store's Create takes.
const slowCreate = 500 * time.Millisecond

// slowStore takes slowCreate to create a customer, unless its context ends
// first.
type slowStore struct {
	customers.Store
	hooks *slowHooks
}

func (s slowStore) Create(ctx context.Context, c customers.Customer) error {
	if s.hooks != nil {
		close(s.hooks.started)
	}
	select {
	case <-time.After(slowCreate):
	case <-ctx.Done():
		return ctx.Err()
	}
	err := s.Store.Create(ctx, c)
	if s.hooks != nil {
		close(s.hooks.finished)
	}
	return err
}

// blockingStore never answers Create or Get: it waits for the context to
// end and returns its error, as a store stuck on a lock would.
type blockingStore struct{ customers.Store }

func (blockingStore) Create(ctx context.Context, _ customers.Customer) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blockingStore) Get(ctx context.Context, _ string) (customers.Customer, error) {
	<-ctx.Done()
	return customers.Customer{}, ctx.Err()
}

// downPingError is why the down store is not ready: it must reach the log
// and never the caller.
const downPingError = "dial tcp 10.9.8.7:5432: connect: connection refused"

// downStore works but reports that what it stores in cannot be reached.
type downStore struct{ customers.Store }

func (downStore) Ping(context.Context) error { return errors.New(downPingError) }

// brokenCause is what the broken store's errors wrap: it must reach the log
// and never the caller.
const brokenCause = "ERROR: relation \"customers\" does not exist (SQLSTATE 42P01) at 10.9.8.7"

// brokenStore fails as a store with a defect, or an outage, would: List
// returns an error of no domain kind, Get an UnavailableError.
type brokenStore struct{ customers.Store }

func (brokenStore) List(context.Context, customers.ListQuery) ([]customers.Customer, error) {
	return nil, errors.New(brokenCause)
}

func (brokenStore) Get(context.Context, string) (customers.Customer, error) {
	return customers.Customer{}, &domainerr.UnavailableError{Dependency: "database", Err: errors.New(brokenCause)}
}

var (
	_ customers.Store = brokenStore{}
	_ customers.Store = panickingStore{}
	_ customers.Store = slowStore{}
	_ customers.Store = blockingStore{}
	_ customers.Store = downStore{}
	_ registry.Pinger = downStore{}
)
