package gateway_test

// Fair sharing: rate limits per principal and class, and load shedding.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/customers/memory"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/idempotency"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// withRateLimits configures read and write limits, and exempts the admin
// principal the test server bootstraps (it makes the other principals).
func withRateLimits(read, write gateway.RateLimit, principals map[string]gateway.PrincipalRateLimits) serverOption {
	return withConfig(func(cfg *gateway.Config) {
		cfg.RateLimits.Read, cfg.RateLimits.Write = read, write
		cfg.RateLimits.Principals = map[string]gateway.PrincipalRateLimits{
			"admin": {Read: &gateway.RateLimit{}, Write: &gateway.RateLimit{}},
		}
		for name, p := range principals {
			cfg.RateLimits.Principals[name] = p
		}
	})
}

// retryInfo returns the delay of an error's google.rpc.RetryInfo detail.
func retryInfo(t *testing.T, ce *connect.Error) (time.Duration, bool) {
	t.Helper()
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatalf("detail %s: %v", d.Type(), err)
		}
		if info, ok := v.(*errdetails.RetryInfo); ok {
			return info.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// checkRetryHint checks that a refusal says when to retry both ways, the
// RetryInfo delay within (0, most] and Retry-After its whole seconds
// rounded up, and returns the delay.
func checkRetryHint(t *testing.T, ce *connect.Error, most time.Duration) time.Duration {
	t.Helper()
	delay, ok := retryInfo(t, ce)
	if !ok {
		t.Fatalf("refusal %q has no RetryInfo detail", ce.Message())
	}
	if delay <= 0 || delay > most {
		t.Errorf("RetryInfo delay %s, want within (0, %s]", delay, most)
	}
	want := strconv.Itoa(max(int(math.Ceil(delay.Seconds())), 1))
	if got := ce.Meta().Get("Retry-After"); got != want {
		t.Errorf("Retry-After %q, want %q (the RetryInfo delay %s in seconds, rounded up)", got, want, delay)
	}
	if !plinth.IsRetryable(ce) {
		t.Error("the Go SDK does not see the refusal as retryable")
	}
	return delay
}

func signUpAs(ctx context.Context, c customersv1connect.CustomerServiceClient, email string) error {
	_, err := c.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Rate Limited", Email: email}))
	return err
}

// metricsText returns what /metrics says.
func (ts *testServer) metricsText(t *testing.T) string {
	t.Helper()
	_, body := ts.get(t, "/metrics")
	return string(body)
}

// auditRecords returns the audit's records of capabilities ending in
// suffix, as the admin sees them.
func (ts *testServer) auditRecords(t *testing.T, suffix string) []*auditv1.AuditRecord {
	t.Helper()
	auditor := auditv1connect.NewAuditServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key))
	var out []*auditv1.AuditRecord
	for r, err := range (plinth.AuditClient{AuditServiceClient: auditor}).AllAuditRecords(t.Context(), &auditv1.ListAuditRecordsRequest{PageSize: 200}) {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(r.GetCapability(), suffix) {
			out = append(out, r)
		}
	}
	return out
}

// TestRateLimitsPerClassAndPrincipal proves that each principal has its own
// buckets, one per class, that overrides apply by name, and what a refusal
// says.
func TestRateLimitsPerClassAndPrincipal(t *testing.T) {
	t.Parallel()
	// A token every ten seconds: none comes back while the test runs.
	ts := startServer(t, withRateLimits(
		gateway.RateLimit{Rate: 0.1, Burst: 4},
		gateway.RateLimit{Rate: 0.1, Burst: 3},
		map[string]gateway.PrincipalRateLimits{"batch-app": {Write: &gateway.RateLimit{Rate: 0.1, Burst: 6}}},
	))
	payrollID, payrollKey, _ := newPrincipal(t, ts, "payroll-app", gateway.AdminRole)
	_, otherKey, _ := newPrincipal(t, ts, "ledger-app", gateway.AdminRole)
	_, batchKey, _ := newPrincipal(t, ts, "batch-app", gateway.AdminRole)
	payroll, other, batch := customersAs(ts, payrollKey), customersAs(ts, otherKey), customersAs(ts, batchKey)

	for i := range 3 {
		if err := signUpAs(t.Context(), payroll, fmt.Sprintf("payroll%d@example.com", i)); err != nil {
			t.Fatalf("write %d of a burst of 3: %v", i+1, err)
		}
	}
	err := signUpAs(t.Context(), payroll, "payroll3@example.com")
	ce := connectError(t, err, connect.CodeResourceExhausted)
	msg := regexp.MustCompile(`^rate limit of 0\.1 write calls per second \(bursts of up to 3\) for principal payroll-app exceeded; retry after ([0-9.]+m?s)$`)
	m := msg.FindStringSubmatch(ce.Message())
	if m == nil {
		t.Fatalf("message %q, want it to match %s", ce.Message(), msg)
	}
	delay := checkRetryHint(t, ce, 10*time.Second)
	if delay < 5*time.Second {
		t.Errorf("RetryInfo delay %s, want about 10s (a token every 10s)", delay)
	}
	if said, _ := time.ParseDuration(m[1]); said != delay {
		t.Errorf("the message says retry after %s, RetryInfo %s", m[1], delay)
	}
	info := errorInfo(t, ce)
	if info.GetReason() != "RATE_LIMITED" || info.GetDomain() != "plinth.dev" || info.GetMetadata()["class"] != "write" ||
		info.GetMetadata()["principal_id"] != payrollID || info.GetMetadata()["rate"] != "0.1" || info.GetMetadata()["burst"] != "3" {
		t.Errorf("ErrorInfo %v", info)
	}
	if plinth.Reason(err) != "RATE_LIMITED" {
		t.Errorf("the Go SDK reads reason %q", plinth.Reason(err))
	}
	// The refusal is logged, audited under the caller, and counted.
	line := ts.accessLog(t, ce.Meta().Get(gateway.RequestIDHeader))
	if line.str("code") != "resource_exhausted" || !strings.Contains(line.str("error"), "payroll-app") {
		t.Errorf("access log %v, want code resource_exhausted and the message", line)
	}

	// Reads have their own bucket: the writes did not touch it.
	for i := range 4 {
		if _, err := payroll.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
			t.Fatalf("read %d with the write bucket empty: %v", i+1, err)
		}
	}
	_, err = payroll.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	if ce := connectError(t, err, connect.CodeResourceExhausted); !strings.Contains(ce.Message(), "0.1 read calls per second (bursts of up to 4)") {
		t.Errorf("read refusal %q", ce.Message())
	}

	// Another principal's buckets are its own.
	for i := range 3 {
		if err := signUpAs(t.Context(), other, fmt.Sprintf("other%d@example.com", i)); err != nil {
			t.Fatalf("another principal's write %d: %v", i+1, err)
		}
	}
	connectError(t, signUpAs(t.Context(), other, "other3@example.com"), connect.CodeResourceExhausted)

	// An override by name: batch-app's burst is 6, its reads the default.
	for i := range 6 {
		if err := signUpAs(t.Context(), batch, fmt.Sprintf("batch%d@example.com", i)); err != nil {
			t.Fatalf("batch-app's write %d of 6: %v", i+1, err)
		}
	}
	if ce := connectError(t, signUpAs(t.Context(), batch, "batch6@example.com"), connect.CodeResourceExhausted); !strings.Contains(ce.Message(), "bursts of up to 6") {
		t.Errorf("override refusal %q", ce.Message())
	}
	// And the admin is exempt (rate 0): it is not limited at all.
	for i := range 10 {
		if err := signUpAs(t.Context(), ts.client(), fmt.Sprintf("admin%d@example.com", i)); err != nil {
			t.Fatalf("the exempt admin's write %d: %v", i+1, err)
		}
	}

	text := ts.metricsText(t)
	for _, want := range []string{
		`plinth_rate_limited_total{class="write"} 3` + "\n",
		`plinth_rate_limited_total{class="read"} 1` + "\n",
		`plinth_capability_calls_total{capability="` + signUpProcedure + `",code="resource_exhausted"} 3` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var refused int
	for _, r := range ts.auditRecords(t, "/SignUpCustomer") {
		if r.GetCode() == "resource_exhausted" {
			refused++
			if r.GetPrincipalId() == "" {
				t.Errorf("audit record %v of a rate-limited call names no principal", r)
			}
		}
	}
	if refused != 3 {
		t.Errorf("%d rate-limited sign-ups audited, want 3", refused)
	}
}

// TestRateLimitedCallClaimsNoKey proves that a refused call reaches neither
// the idempotency store nor the backend, that plain HTTP callers get 429
// with Retry-After, and that the Go SDK waits as told and gets through.
func TestRateLimitedCallClaimsNoKey(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withRateLimits(gateway.RateLimit{}, gateway.RateLimit{Rate: 1, Burst: 1}, nil))
	_, key, _ := newPrincipal(t, ts, "payroll-app", gateway.AdminRole)
	as := func(k string) http.Header {
		return http.Header{"Authorization": {"Bearer " + k}, idempotency.Header: {"key-2"}}
	}
	body := func(email string) string { return `{"name": "Ada", "email": "` + email + `"}` }

	if res, b := ts.post(t, signUpProcedure, "application/json", body("first@example.com"), http.Header{"Authorization": {"Bearer " + key}}); res.StatusCode != http.StatusOK {
		t.Fatalf("first sign-up: %s %s", res.Status, b)
	}
	res, b := ts.post(t, signUpProcedure, "application/json", body("second@example.com"), as(key))
	var eb connectErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || res.StatusCode != http.StatusTooManyRequests || eb.Code != "resource_exhausted" {
		t.Fatalf("over the limit: %s %s, want 429 resource_exhausted", res.Status, b)
	}
	if res.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", res.Header.Get("Retry-After"))
	}
	var types []string
	for _, d := range eb.Details {
		types = append(types, d.Type)
	}
	if !slices.Contains(types, "google.rpc.RetryInfo") || !slices.Contains(types, "google.rpc.ErrorInfo") {
		t.Errorf("details %v, want RetryInfo and ErrorInfo", types)
	}
	if n := countCustomers(t, ts.client()); n != 1 {
		t.Errorf("%d customers stored, want 1: the refused call reached the backend", n)
	}

	// Once the bucket has a token again, the same key with another request
	// runs as new: the refusal claimed nothing.
	time.Sleep(1100 * time.Millisecond)
	res, b = ts.post(t, signUpProcedure, "application/json", body("third@example.com"), as(key))
	if res.StatusCode != http.StatusOK || res.Header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("the refused call's key, later: %s %s (replayed %q), want it to run", res.Status, b, res.Header.Get(idempotency.ReplayedHeader))
	}

	// The Go SDK retries ResourceExhausted when told when to, and gets
	// through once the bucket refills (a second here).
	sdk, err := plinth.New(ts.URL, key, plinth.WithHTTPClient(ts.h1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Customers.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Eve", Email: "sdk@example.com"}))
	if err != nil {
		t.Fatalf("the SDK's call over the limit, with retries: %v", err)
	}
	if n := countCustomers(t, ts.client()); n != 3 {
		t.Errorf("%d customers stored, want 3", n)
	}

	// gRPC callers get the same hint.
	grpc := customersv1connect.NewCustomerServiceClient(ts.h2c, ts.URL, connect.WithGRPC(), plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	ce := connectError(t, signUpAs(t.Context(), grpc, "grpc@example.com"), connect.CodeResourceExhausted)
	checkRetryHint(t, ce, time.Second)
}

// TestLoadShedding proves that a call over limits.max_in_flight is refused
// at once, with a retry hint, without being audited, and that what
// operators probe is never shed.
func TestLoadShedding(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withBackend("testblock"), withConfig(func(cfg *gateway.Config) {
		cfg.Limits.MaxInFlight = 2
		cfg.Limits.QueueTimeout = 0
	}))
	blocked, unblock := context.WithCancel(t.Context())
	defer unblock()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { signUpAs(blocked, ts.client(), fmt.Sprintf("stuck%d@example.com", i)) })
	}
	waitInFlight(t, ts, 2)

	start := time.Now()
	_, err := ts.client().ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	ce := connectError(t, err, connect.CodeUnavailable)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shedding took %s, want an answer at once", took)
	}
	if !strings.HasPrefix(ce.Message(), "the gateway is at capacity and did not start this call; retry after ") {
		t.Errorf("message %q", ce.Message())
	}
	checkRetryHint(t, ce, time.Second)
	if info := errorInfo(t, ce); info.GetReason() != "OVERLOADED" {
		t.Errorf("ErrorInfo %v, want reason OVERLOADED", info)
	}
	if line := ts.accessLog(t, ce.Meta().Get(gateway.RequestIDHeader)); line.str("code") != "unavailable" {
		t.Errorf("access log %v, want code unavailable", line)
	}
	// Plain HTTP callers get 503 with Retry-After.
	res, b := ts.post(t, "/plinth.customers.v1.CustomerService/ListCustomers", "application/json", `{}`, nil)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Errorf("plain JSON, shed: %s (Retry-After %q) %s", res.Status, res.Header.Get("Retry-After"), b)
	}

	// What operators probe answers while every slot is taken.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/catalog"} {
		if res, _ := ts.get(t, path); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s while shedding: %s", path, res.Status)
		}
	}
	if status := ts.plainHealthCheck(t); status != "SERVING_STATUS_SERVING" {
		t.Errorf("grpc.health.v1 while shedding: %s", status)
	}
	text := ts.metricsText(t)
	if !strings.Contains(text, "plinth_shed_total 2\n") {
		t.Errorf("/metrics lacks plinth_shed_total 2:\n%s", text)
	}

	unblock()
	wg.Wait()
	waitInFlight(t, ts, 0)
	if _, err := ts.client().ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatalf("once the slots are free: %v", err)
	}
	// Shed calls were logged and counted, not audited: nothing ran, and no
	// one was authenticated.
	for _, r := range ts.auditRecords(t, "/ListCustomers") {
		if r.GetCode() == "unavailable" {
			t.Errorf("a shed call was audited: %v", r)
		}
	}
}

// TestLoadSheddingQueue proves that a call over the bound waits up to
// limits.queue_timeout for a slot: it runs if one frees in time and is
// shed otherwise.
func TestLoadSheddingQueue(t *testing.T) {
	t.Parallel()
	const queueTimeout = 1500 * time.Millisecond
	ts := startServer(t, withBackend("testblock"), withConfig(func(cfg *gateway.Config) {
		cfg.Limits.MaxInFlight = 1
		cfg.Limits.QueueTimeout = gateway.Duration(queueTimeout)
	}))
	blocked, unblock := context.WithCancel(t.Context())
	defer unblock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		signUpAs(blocked, ts.client(), "stuck@example.com")
	}()
	waitInFlight(t, ts, 1)

	start := time.Now()
	_, err := ts.client().ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	connectError(t, err, connect.CodeUnavailable)
	if took := time.Since(start); took < queueTimeout {
		t.Errorf("shed after %s, want it to wait limits.queue_timeout (%s) first", took, queueTimeout)
	}

	queued := make(chan error, 1)
	go func() {
		_, err := ts.client().ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
		queued <- err
	}()
	time.Sleep(100 * time.Millisecond) // the call is (most likely) waiting by now
	unblock()
	<-done
	if err := <-queued; err != nil {
		t.Fatalf("a call queued while the slot was taken, freed within the queue timeout: %v", err)
	}
}

// waitInFlight waits until the gateway reports n capability calls in
// flight.
func waitInFlight(t *testing.T, ts *testServer, n int) {
	t.Helper()
	want := fmt.Sprintf("plinth_capability_calls_in_flight %d\n", n)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(ts.metricsText(t), want) {
			return
		}
	}
	t.Fatalf("never %d calls in flight:\n%s", n, ts.metricsText(t))
}

// The "testpool" customers backend stands for a database behind a small
// connection pool: every Create and Get holds one of poolSize connections,
// and a Create holds it for poolCreate. A caller whose writes are let
// through without limit takes every connection, and everyone else waits.
const (
	poolSize   = 2
	poolCreate = 200 * time.Millisecond
)

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "customers",
		Name:   "testpool",
		Open: func(context.Context, registry.Env) (any, error) {
			return pooledStore{Store: memory.New(), conns: make(chan struct{}, poolSize)}, nil
		},
	})
}

type pooledStore struct {
	customers.Store
	conns chan struct{}
}

func (s pooledStore) hold(ctx context.Context) (func(), error) {
	select {
	case s.conns <- struct{}{}:
		return func() { <-s.conns }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s pooledStore) Create(ctx context.Context, c customers.Customer) error {
	release, err := s.hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	select {
	case <-time.After(poolCreate):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Create(ctx, c)
}

func (s pooledStore) Get(ctx context.Context, id string) (customers.Customer, error) {
	release, err := s.hold(ctx)
	if err != nil {
		return customers.Customer{}, err
	}
	defer release()
	return s.Store.Get(ctx, id)
}

// TestFairSharing proves what the limits are for: a principal hammering
// the gateway far over its limit is refused, while a well-behaved one
// calling at a modest rate keeps being served, with its latency close to
// what it was alone. The bound compares the well-behaved caller with
// itself alone, measured in the same test, with generous slack, so that a
// loaded machine does not make it flaky; and a control with a principal
// that has no limit shows that the same noise, let through, does starve it.
//
// It does not run in parallel with the package's other tests (Go runs the
// tests that do not call t.Parallel first, one at a time), so that their
// load does not land on one phase of the comparison and not the other.
func TestFairSharing(t *testing.T) {
	ts := startServer(t, withBackend("testpool"), withRateLimits(
		gateway.RateLimit{Rate: 200, Burst: 200},
		gateway.RateLimit{Rate: 2, Burst: 2},
		map[string]gateway.PrincipalRateLimits{"unlimited-app": {Write: &gateway.RateLimit{}}},
	))
	_, noisyKey, _ := newPrincipal(t, ts, "noisy-app", gateway.AdminRole)
	_, politeKey, _ := newPrincipal(t, ts, "polite-app", gateway.AdminRole)
	_, unlimitedKey, _ := newPrincipal(t, ts, "unlimited-app", gateway.AdminRole)
	ownClient := func(key string) customersv1connect.CustomerServiceClient {
		c := newH1Client()
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		t.Cleanup(c.CloseIdleConnections)
		return customersv1connect.NewCustomerServiceClient(c, ts.URL, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	}
	polite := ownClient(politeKey)
	// A customer to read (the admin is not limited).
	customer := signUp(t, ts.client(), "Ada Lovelace", "ada@example.com")

	// The well-behaved caller reads every 10ms and records how long each
	// read took; every one must succeed.
	measure := func(phase string, calls int) []time.Duration {
		t.Helper()
		latencies := make([]time.Duration, 0, calls)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := range calls {
			<-tick.C
			start := time.Now()
			_, err := polite.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: customer.GetId()}))
			if err != nil {
				t.Fatalf("%s: the well-behaved caller's call %d failed: %v", phase, i+1, err)
			}
			latencies = append(latencies, time.Since(start))
		}
		slices.Sort(latencies)
		return latencies
	}
	percentile := func(sorted []time.Duration, p float64) time.Duration {
		return sorted[int(math.Ceil(p*float64(len(sorted))))-1]
	}
	type noiseResult struct {
		ok, limited, other int64
		otherErr           error
		lasted             time.Duration
	}
	// noise has 8 goroutines sign customers up as key's principal, each
	// pausing 20ms between calls: up to 400 writes a second (some 200 on a
	// loaded machine), 100 times a limit of 2 and more, yet not so many that
	// refusing them takes every cycle of a shared two-core machine. It
	// returns what stops them.
	noise := func(key string) func() noiseResult {
		client := ownClient(key)
		ctx, cancel := context.WithCancel(t.Context())
		var (
			wg                  sync.WaitGroup
			ok, limited, others atomic.Int64
			otherErr            atomic.Pointer[error]
		)
		start := time.Now()
		for g := range 8 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					err := signUpAs(ctx, client, fmt.Sprintf("noise-%s-%d-%d@example.com", key[4:12], g, i))
					switch {
					case err == nil:
						ok.Add(1)
					case connect.CodeOf(err) == connect.CodeResourceExhausted:
						limited.Add(1)
					case ctx.Err() != nil:
					default:
						others.Add(1)
						otherErr.Store(&err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		return func() noiseResult {
			cancel()
			wg.Wait()
			r := noiseResult{ok: ok.Load(), limited: limited.Load(), other: others.Load(), lasted: time.Since(start)}
			if e := otherErr.Load(); e != nil {
				r.otherErr = *e
			}
			return r
		}
	}

	alone := measure("alone", 100)

	stopNoisy := noise(noisyKey)
	time.Sleep(500 * time.Millisecond) // the noisy caller's burst of 2 is spent, and its writes done
	crowded := measure("beside the noisy caller", 100)
	noisy := stopNoisy()

	// The control: the same noise from a principal without a write limit.
	stopUnlimited := noise(unlimitedKey)
	time.Sleep(200 * time.Millisecond)
	starved := measure("beside the unlimited caller", 3)
	unlimited := stopUnlimited()

	// The floor is for shared CI machines, where a read that takes 2ms
	// alone now and then takes 100ms whatever the test does; it is still
	// far below what the control shows starvation to cost.
	bound := max(10*percentile(alone, 0.5), 250*time.Millisecond)
	t.Logf("well-behaved caller: alone p50 %s p99 %s; beside the noisy caller p50 %s p99 %s (bound %s); beside the unlimited one p50 %s",
		percentile(alone, 0.5), percentile(alone, 0.99), percentile(crowded, 0.5), percentile(crowded, 0.99), bound, percentile(starved, 0.5))
	t.Logf("noisy caller: %d served, %d rate-limited in %s; unlimited caller: %d served", noisy.ok, noisy.limited, noisy.lasted.Round(time.Millisecond), unlimited.ok)

	if p99 := percentile(crowded, 0.99); p99 > bound {
		t.Errorf("the well-behaved caller's p99 beside the noisy one is %s, over %s (10× its p50 alone, at least 250ms)", p99, bound)
	}
	if noisy.other > 0 || unlimited.other > 0 {
		t.Errorf("the noisy callers got errors other than resource_exhausted, such as %v %v", noisy.otherErr, unlimited.otherErr)
	}
	if noisy.limited < 5*noisy.ok {
		t.Errorf("the noisy caller was refused %d times and served %d: want it mostly refused", noisy.limited, noisy.ok)
	}
	// 2 a second and a burst of 2, with a second of slack.
	if most := int64(2 + 2*(noisy.lasted.Seconds()+1)); noisy.ok > most {
		t.Errorf("the noisy caller was served %d writes in %s, over its limit (at most %d)", noisy.ok, noisy.lasted, most)
	}
	// Without the limit, the same noise holds the pool and the
	// well-behaved caller waits behind it: the test can tell the two apart.
	if p50 := percentile(starved, 0.5); p50 < bound || p50 < poolCreate {
		t.Errorf("beside an unlimited noisy caller the well-behaved one's p50 is %s: the control does not starve it, so the test proves nothing", p50)
	}
}

// TestFairSharingConfig proves the keys of rate limits and load shedding:
// their defaults, the file, the environment, and the values refused.
func TestFairSharingConfig(t *testing.T) {
	t.Parallel()
	cfg, err := gateway.LoadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxInFlight != 256 || cfg.Limits.QueueTimeout.Std() != 100*time.Millisecond ||
		cfg.RateLimits.Read != (gateway.RateLimit{}) || cfg.RateLimits.Write != (gateway.RateLimit{}) {
		t.Errorf("defaults: limits %+v, rate limits %+v; want 256 in flight, 100ms queue, no rate limit", cfg.Limits, cfg.RateLimits)
	}

	path := writeConfig(t, `
[limits]
max_in_flight = 64
queue_timeout = "50ms"

[rate_limits]
read = { rate = 200, burst = 400 }
write = { rate = 50, burst = 100 }

[rate_limits.principals.payroll-batch]
write = { rate = 500, burst = 1000 }
`)
	cfg, err = gateway.LoadConfig(path, []string{"PLINTH_RATE_LIMITS_WRITE_RATE=20.5", "PLINTH_LIMITS_MAX_IN_FLIGHT=32"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimits.Read != (gateway.RateLimit{Rate: 200, Burst: 400}) || cfg.RateLimits.Write != (gateway.RateLimit{Rate: 20.5, Burst: 100}) {
		t.Errorf("rate limits %+v", cfg.RateLimits)
	}
	if p := cfg.RateLimits.Principals["payroll-batch"]; p.Read != nil || p.Write == nil || *p.Write != (gateway.RateLimit{Rate: 500, Burst: 1000}) {
		t.Errorf("payroll-batch's override %+v", p)
	}
	if cfg.Limits.MaxInFlight != 32 || cfg.Limits.QueueTimeout.Std() != 50*time.Millisecond {
		t.Errorf("limits %+v", cfg.Limits)
	}

	for _, tc := range []struct {
		name, file string
		env        []string
		wantInErr  []string
	}{
		{name: "rate without burst", env: []string{"PLINTH_RATE_LIMITS_READ_RATE=10"}, wantInErr: []string{"rate_limits.read.burst", "at least 1"}},
		{name: "negative rate", env: []string{"PLINTH_RATE_LIMITS_WRITE_RATE=-1"}, wantInErr: []string{"rate_limits.write.rate"}},
		{name: "not a number", env: []string{"PLINTH_RATE_LIMITS_WRITE_RATE=fast"}, wantInErr: []string{"PLINTH_RATE_LIMITS_WRITE_RATE", "number"}},
		{name: "unknown key in an override", file: "[rate_limits.principals.x]\nwrite = { rate = 1, burst = 1, brust = 2 }\n", wantInErr: []string{"unknown key", "brust"}},
		{name: "empty override", file: "[rate_limits.principals.x]\n", wantInErr: []string{"rate_limits.principals.x", "neither"}},
		{name: "bad override", file: "[rate_limits.principals.x]\nread = { rate = 5 }\n", wantInErr: []string{"rate_limits.principals.x.read.burst"}},
		{name: "negative in flight", env: []string{"PLINTH_LIMITS_MAX_IN_FLIGHT=-1"}, wantInErr: []string{"limits.max_in_flight"}},
		{name: "queue longer than a call", env: []string{"PLINTH_LIMITS_QUEUE_TIMEOUT=1m"}, wantInErr: []string{"limits.queue_timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeConfig(t, tc.file)
			}
			_, err := gateway.LoadConfig(path, tc.env)
			if err == nil {
				t.Fatal("LoadConfig accepted a bad configuration")
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}
