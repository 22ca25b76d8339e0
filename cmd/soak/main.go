// Command soak holds a running gateway under a mixed, realistic workload at
// a bounded rate for a long time, and then says whether it stayed healthy:
// no unexpected error, the ledger's invariants hold, the audit chain
// verifies, and the gateway's goroutines, heap, resident memory and open
// files stayed flat (no leak). It reports latency percentiles per
// capability and the throughput it reached. scripts/soak.sh runs it against
// the real binary on PostgreSQL with the Vault keyring; docs/benchmarks.md
// has the figures.
//
//	soak --url http://127.0.0.1:8080 --api-key plk_... --rate 200 --duration 5m
//
// The load is open-loop: a dispatcher hands one call every 1/rate seconds to
// a pool of --clients workers, whatever the calls' latency. A call due while
// every worker is busy is not sent and is counted as "behind schedule": the
// tool never slows down silently to what the gateway can take. A call's
// latency runs from when its worker sends it, retries included; how late
// the dispatcher handed calls over is reported apart.
//
// Every dispatched slot is one call, of a kind drawn with the --mix weights:
//
//	signup    one step of onboarding a customer: sign up (unique email,
//	          every PII field), approve (most of them), open a ledger
//	          account for the approved, fund it from the platform's
//	          settlement account
//	transfer  MoveMoney between random funded customer accounts, one leg or
//	          (one in ten) two; refused for insufficient funds now and then,
//	          which is an expected answer, counted apart from errors
//	hold      HoldFunds on a random account, or capture (in full or in part,
//	          to another account) or release one placed earlier
//	read      GetCustomer or FindCustomerByEmail (whose answers must match
//	          the sign-up: a mismatch counts as an unexpected error),
//	          GetBalance or GetTransfer
//	list      a page of ListCustomers or ListTransfers, following the last
//	          page's token, or one account's transfers
//
// Every mutating call carries an Idempotency-Key (the SDK makes one per
// call and keeps it across its retries). An unexpected error is any error
// but an INSUFFICIENT_FUNDS refusal, after the SDK's retries; soak lists
// them by capability and code and exits 1 if there was any.
//
// During the run it reads the gateway's /metrics every --sample-every and
// prints the series. After a warm-up, it compares the average of the last
// third of the samples with that of the first third; see the thresholds
// below for what counts as growth.
//
// After the run it releases the holds still active, checks the ledger's
// invariants over every account it opened (internal/ledgercheck) and calls
// VerifyAuditChain.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/alecthomas/kong"
	"google.golang.org/protobuf/types/known/durationpb"

	"plinth.dev/plinth/internal/ledgercheck"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

type cli struct {
	URL          string        `default:"http://127.0.0.1:8080" help:"Base URL of the gateway."`
	APIKey       string        `name:"api-key" env:"PLINTH_API_KEY" required:"" help:"API key of a principal with the customers, ledger and audit scopes (plinth bootstrap prints one)."`
	Rate         float64       `default:"200" help:"Calls per second, in total, over every kind."`
	Duration     time.Duration `default:"5m" help:"How long the load lasts."`
	Clients      int           `default:"32" help:"Workers: the most calls in flight at once; a call due while all are busy is not sent but counted behind schedule."`
	Mix          string        `default:"signup=10,transfer=35,hold=15,read=25,list=15" help:"Weights of the kinds of call: signup, transfer, hold, read, list."`
	Warmup       time.Duration `default:"0s" help:"Metrics samples before this are left out of the leak check; 0 means a fifth of --duration, at most 1m."`
	SampleEvery  time.Duration `name:"sample-every" default:"10s" help:"How often to read /metrics (at most a twelfth of --duration, so that a short run has samples to compare)."`
	MetricsURL   string        `name:"metrics-url" help:"The gateway's Prometheus endpoint; default <url>/metrics."`
	SeedAccounts int           `name:"seed-accounts" default:"20" help:"Customers onboarded and funded before the load starts, so that transfers have accounts from the first second."`
	Timeout      time.Duration `default:"30s" help:"Deadline of one call, retries included."`
	MaxBehind    float64       `name:"max-behind" default:"0.05" help:"Fail if more than this fraction of the calls could not be dispatched on time."`
	Seed         uint64        `default:"1" help:"Seed of the random choices."`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Description("Hold the gateway under a mixed load at a bounded rate and check it stayed healthy."))
	ok, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// The kinds of call the mix weighs.
const (
	kindSignup = iota
	kindTransfer
	kindHold
	kindRead
	kindList
	numKinds
)

var kindNames = [numKinds]string{"signup", "transfer", "hold", "read", "list"}

func parseMix(s string) ([numKinds]float64, error) {
	var w [numKinds]float64
	var total float64
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		k := slices.Index(kindNames[:], strings.TrimSpace(name))
		if !ok || k < 0 {
			return w, fmt.Errorf("--mix: %q is not kind=weight with a kind of %s", part, strings.Join(kindNames[:], ", "))
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return w, fmt.Errorf("--mix: weight %q of %s is not a number >= 0", val, name)
		}
		w[k] = f
		total += f
	}
	if total <= 0 {
		return w, errors.New("--mix: the weights sum to 0")
	}
	return w, nil
}

// pick draws a kind with the weights w.
func pick(rng *rand.Rand, w *[numKinds]float64, total float64) int {
	x := rng.Float64() * total
	for k, f := range w {
		if x < f {
			return k
		}
		x -= f
	}
	return kindList
}

func run(c cli) (bool, error) {
	if c.Rate <= 0 || c.Clients < 1 || c.Duration <= 0 {
		return false, errors.New("--rate, --clients and --duration must be positive")
	}
	weights, err := parseMix(c.Mix)
	if err != nil {
		return false, err
	}
	if c.Warmup <= 0 {
		c.Warmup = min(c.Duration/5, time.Minute)
	}
	c.SampleEvery = max(min(c.SampleEvery, c.Duration/12), time.Second)
	if c.MetricsURL == "" {
		c.MetricsURL = strings.TrimRight(c.URL, "/") + "/metrics"
	}

	attempts := &attemptCounter{codes: map[connect.Code]int{}}
	transport := &http.Transport{MaxIdleConnsPerHost: c.Clients + 4, IdleConnTimeout: 90 * time.Second}
	client, err := plinth.New(c.URL, c.APIKey,
		plinth.WithHTTPClient(&http.Client{Transport: transport}),
		plinth.WithUserAgent("plinth-soak/1"),
		plinth.WithConnectOptions(connect.WithInterceptors(attempts)))
	if err != nil {
		return false, err
	}
	s := &soak{
		client:  client,
		timeout: c.Timeout,
		world:   &world{runID: strconv.FormatInt(time.Now().UnixMilli(), 36)},
	}
	metricsClient := &http.Client{Timeout: 10 * time.Second}
	if _, err := scrape(metricsClient, c.MetricsURL); err != nil {
		return false, err // before any load: say at once that the leak check cannot run
	}

	// Setup, untimed: the platform's settlement account, and a few funded
	// customers.
	setup := newStats()
	s.stats = setup
	rng := rand.New(rand.NewPCG(c.Seed, 0))
	if err := s.openSettlement(); err != nil {
		return false, fmt.Errorf("open the settlement account: %w", err)
	}
	for s.world.fundedCount() < c.SeedAccounts {
		if err := s.onboardStep(rng, 1); err != nil {
			return false, fmt.Errorf("seed customers: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "soak: %d customers onboarded and funded; load: %.0f calls/s for %v, %d workers, mix %s\n",
		c.SeedAccounts, c.Rate, c.Duration, c.Clients, c.Mix)

	// The load.
	load := newStats()
	s.stats = load
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sampler := startSampler(metricsClient, c.MetricsURL, c.SampleEvery, load)
	d := s.drive(ctx, c, &weights)
	series := sampler.stop()
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "soak: interrupted; checking what ran")
	}
	stop()

	// After the load, untimed: free the holds still active, let the
	// gateway go idle, read /metrics once more, check the ledger and the
	// audit chain.
	cleanup := newStats()
	s.stats = cleanup
	released := s.releaseAll()
	time.Sleep(2 * time.Second)
	idle, idleErr := scrape(metricsClient, c.MetricsURL)

	ok := true
	fail := func(format string, args ...any) {
		ok = false
		fmt.Printf("FAIL  "+format+"\n", args...)
	}
	pass := func(format string, args ...any) { fmt.Printf("ok    "+format+"\n", args...) }

	fmt.Println()
	load.report(d.elapsed)
	fmt.Println()
	fmt.Printf("target %.0f calls/s for %v; dispatched %d, behind schedule %d (%.2f%%)%s; completed %d in %v: %.1f calls/s (%.1f ok/s)\n",
		c.Rate, c.Duration, d.dispatched, d.behindTotal(), 100*d.behindFraction(), d.behindByKind(),
		load.total(), d.elapsed.Round(time.Millisecond), float64(load.total())/d.elapsed.Seconds(), float64(load.okTotal())/d.elapsed.Seconds())
	fmt.Printf("dispatcher lag (due time to hand-off): p50 %s ms, p99 %s ms, max %s ms\n", ms(pct(d.lags, 0.50)), ms(pct(d.lags, 0.99)), ms(pct(d.lags, 1)))
	fmt.Printf("attempts that failed with a retryable code (retried by the SDK unless it was the last): %s\n", attempts.String())
	fmt.Printf("holds still active after the load, released: %d\n", released)
	fmt.Println()
	printSeries(series, idle, idleErr, c.Warmup)
	fmt.Println()

	for _, st := range []struct {
		name string
		s    *stats
	}{{"setup", setup}, {"load", load}, {"cleanup", cleanup}} {
		if n := st.s.unexpectedTotal(); n > 0 {
			fail("%d unexpected error(s) during %s: %s", n, st.name, st.s.unexpectedString())
			for _, e := range st.s.firstErrors {
				fmt.Printf("        %s\n", e)
			}
		} else {
			pass("no unexpected error during %s (%d calls, %d expected refusals)", st.name, st.s.total(), st.s.refusedTotal())
		}
	}
	if f := d.behindFraction(); f > c.MaxBehind {
		fail("%.2f%% of the calls could not be dispatched on time (more than --max-behind %.2f%%): the rate was not held", 100*f, 100*c.MaxBehind)
	} else {
		pass("rate held: %.2f%% of the calls behind schedule (at most %.2f%%)", 100*f, 100*c.MaxBehind)
	}
	for _, j := range judge(series, c.Warmup) {
		if j.ok {
			pass("%s", j.msg)
		} else {
			fail("%s", j.msg)
		}
	}

	checkCtx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	accounts := s.world.allAccounts()
	if checked, err := ledgercheck.Check(checkCtx, client.Ledger, accounts); err != nil {
		fail("ledger: %v", err)
	} else {
		pass("ledger: %s", checked)
	}
	if v, err := client.Audit.VerifyAuditChain(checkCtx, connect.NewRequest(&auditv1.VerifyAuditChainRequest{})); err != nil {
		fail("audit chain: VerifyAuditChain: %v", err)
	} else if !v.Msg.GetOk() {
		fail("audit chain broken at record %d: %s", v.Msg.GetFirstBrokenSequence(), v.Msg.GetProblem())
	} else {
		pass("audit chain verifies: %d records", v.Msg.GetRecordsChecked())
	}
	if ok {
		fmt.Println("PASS")
	} else {
		fmt.Println("FAIL")
	}
	return ok, nil
}

// ---------------------------------------------------------------------------
// Dispatch

// driven is what the dispatcher did.
type driven struct {
	dispatched int
	behind     [numKinds]int
	lags       []time.Duration
	elapsed    time.Duration
}

func (d *driven) behindTotal() int {
	n := 0
	for _, b := range d.behind {
		n += b
	}
	return n
}

func (d *driven) behindFraction() float64 {
	all := d.dispatched + d.behindTotal()
	if all == 0 {
		return 0
	}
	return float64(d.behindTotal()) / float64(all)
}

func (d *driven) behindByKind() string {
	if d.behindTotal() == 0 {
		return ""
	}
	var parts []string
	for k, b := range d.behind {
		if b > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", kindNames[k], b))
		}
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// drive dispatches calls at c.Rate for c.Duration (or until ctx is done)
// to c.Clients workers, and waits for the calls in flight.
func (s *soak) drive(ctx context.Context, c cli, weights *[numKinds]float64) driven {
	var total float64
	for _, w := range weights {
		total += w
	}
	jobs := make(chan int) // unbuffered: a send succeeds only if a worker is idle
	var wg sync.WaitGroup
	for w := range c.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(c.Seed, uint64(w)+1))
			for kind := range jobs {
				s.do(kind, rng)
			}
		})
	}
	var d driven
	rng := rand.New(rand.NewPCG(c.Seed, math.MaxUint64))
	interval := time.Duration(float64(time.Second) / c.Rate)
	start := time.Now()
	end := start.Add(c.Duration)
	timer := time.NewTimer(0)
	<-timer.C
loop:
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				break loop
			}
		} else if ctx.Err() != nil {
			break
		}
		kind := pick(rng, weights, total)
		select {
		case jobs <- kind:
			d.dispatched++
			d.lags = append(d.lags, time.Since(due))
		default:
			d.behind[kind]++
		}
	}
	close(jobs)
	wg.Wait()
	d.elapsed = time.Since(start)
	slices.Sort(d.lags)
	return d
}

// do makes one call of kind.
func (s *soak) do(kind int, rng *rand.Rand) {
	switch kind {
	case kindSignup:
		_ = s.onboardStep(rng, 0.8)
	case kindTransfer:
		s.transfer(rng)
	case kindHold:
		s.hold(rng)
	case kindRead:
		s.read(rng)
	case kindList:
		s.list(rng)
	}
}

// ---------------------------------------------------------------------------
// The world: what the calls made so far, for the next calls to use.

type customer struct{ id, email string }

type hold struct {
	id, account string
	amount      int64
}

// step is one pending step of onboarding a customer.
type step struct {
	kind     int // stepApprove, stepOpen, stepFund
	customer customer
	account  string
}

const (
	stepApprove = iota
	stepOpen
	stepFund
)

type world struct {
	runID string // makes this run's emails unique in a database that has others'
	seq   atomic.Int64

	mu         sync.Mutex
	settlement string
	accounts   []string   // every account opened, the settlement account first
	funded     []string   // customer accounts funded, the ones money moves between
	customers  []customer // every customer signed up
	steps      []step     // onboarding steps to do, oldest first
	holds      []hold     // active holds, oldest first
	transfers  [1024]string
	nTransfers int
	// Tokens of the next page of the all-customers and all-transfers
	// listings ("" to start over).
	customersPage, transfersPage string
}

func (w *world) fundedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.funded)
}

func (w *world) allAccounts() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.accounts)
}

// randomFunded returns n distinct funded accounts, or nil if there are
// fewer.
func (w *world) randomFunded(rng *rand.Rand, n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.funded) < n {
		return nil
	}
	out := make([]string, 0, n)
	for len(out) < n {
		a := w.funded[rng.IntN(len(w.funded))]
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (w *world) randomCustomer(rng *rand.Rand) (customer, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.customers) == 0 {
		return customer{}, false
	}
	return w.customers[rng.IntN(len(w.customers))], true
}

func (w *world) addTransfer(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.transfers[w.nTransfers%len(w.transfers)] = id
	w.nTransfers++
}

func (w *world) randomTransfer(rng *rand.Rand) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(w.nTransfers, len(w.transfers))
	if n == 0 {
		return ""
	}
	return w.transfers[rng.IntN(n)]
}

func (w *world) pushStep(st step) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.steps = append(w.steps, st)
}

func (w *world) popStep() (step, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.steps) == 0 {
		return step{}, false
	}
	st := w.steps[0]
	w.steps = w.steps[1:]
	return st, true
}

// ---------------------------------------------------------------------------
// The calls

type soak struct {
	client  *plinth.Client
	timeout time.Duration
	world   *world
	stats   *stats
}

// call runs f with a deadline of its own and records its latency and
// outcome under op. The context is not the run's: a call in flight when
// the run is interrupted finishes.
func (s *soak) call(op string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	t0 := time.Now()
	err := f(ctx)
	s.stats.record(op, time.Since(t0), err)
	return err
}

func (s *soak) openSettlement() error {
	return s.call("OpenLedgerAccount", func(ctx context.Context) error {
		res, err := s.client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
			Currency: "USD", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED, Description: "soak settlement",
		}))
		if err == nil {
			s.world.mu.Lock()
			s.world.settlement = res.Msg.GetAccount().GetId()
			s.world.accounts = append(s.world.accounts, s.world.settlement)
			s.world.mu.Unlock()
		}
		return err
	})
}

var (
	firstNames = []string{"Ada", "Grace", "Katherine", "Dorothy", "Mary", "Annie", "Hedy", "Radia", "Frances", "Barbara", "Margaret", "Joan"}
	lastNames  = []string{"Lovelace", "Hopper", "Johnson", "Vaughan", "Jackson", "Easley", "Lamarr", "Perlman", "Allen", "Liskov", "Hamilton", "Clarke"}
	cities     = []string{"Lisbon", "Porto", "Austin", "Leeds", "Lyon", "Turin", "Ghent", "Malmo"}
)

// onboardStep does the oldest pending onboarding step, or signs up a new
// customer if there is none; approve is the share of sign-ups approved
// (the others stay pending, as some do).
func (s *soak) onboardStep(rng *rand.Rand, approve float64) error {
	st, ok := s.world.popStep()
	if !ok {
		return s.signUp(rng, approve)
	}
	switch st.kind {
	case stepApprove:
		return s.call("ApproveCustomer", func(ctx context.Context) error {
			_, err := s.client.Customers.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: st.customer.id}))
			if err == nil {
				s.world.pushStep(step{kind: stepOpen, customer: st.customer})
			}
			return err
		})
	case stepOpen:
		return s.call("OpenLedgerAccount", func(ctx context.Context) error {
			res, err := s.client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
				Currency: "USD", CustomerId: st.customer.id,
				BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, Description: "wallet",
			}))
			if err == nil {
				id := res.Msg.GetAccount().GetId()
				s.world.mu.Lock()
				s.world.accounts = append(s.world.accounts, id)
				s.world.mu.Unlock()
				s.world.pushStep(step{kind: stepFund, customer: st.customer, account: id})
			}
			return err
		})
	default: // stepFund
		return s.call("MoveMoney (fund)", func(ctx context.Context) error {
			s.world.mu.Lock()
			settlement := s.world.settlement
			s.world.mu.Unlock()
			res, err := s.client.Ledger.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
				Currency:    "USD",
				Legs:        []*ledgerv1.Leg{{FromAccountId: settlement, ToAccountId: st.account, Amount: 5_000 + rng.Int64N(45_000)}},
				Description: "top-up",
			}))
			if err == nil {
				s.world.addTransfer(res.Msg.GetTransfer().GetId())
				s.world.mu.Lock()
				s.world.funded = append(s.world.funded, st.account)
				s.world.mu.Unlock()
			}
			return err
		})
	}
}

func (s *soak) signUp(rng *rand.Rand, approve float64) error {
	n := s.world.seq.Add(1)
	first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
	email := fmt.Sprintf("%s.%s.%s-%d@example.com", strings.ToLower(first), strings.ToLower(last), s.world.runID, n)
	req := &customersv1.SignUpCustomerRequest{
		Name:        first + " " + last,
		Email:       email,
		Phone:       fmt.Sprintf("+1415%07d", rng.IntN(10_000_000)),
		DateOfBirth: fmt.Sprintf("%d-%02d-%02d", 1950+rng.IntN(50), 1+rng.IntN(12), 1+rng.IntN(28)),
		Address: &customersv1.Address{
			Line1: fmt.Sprintf("%d Main Street", 1+rng.IntN(999)), City: cities[rng.IntN(len(cities))],
			PostalCode: fmt.Sprintf("%05d", rng.IntN(100_000)), CountryCode: "US",
		},
		TaxId: fmt.Sprintf("%03d-%02d-%04d", 100+rng.IntN(800), 10+rng.IntN(90), rng.IntN(10_000)),
	}
	return s.call("SignUpCustomer", func(ctx context.Context) error {
		res, err := s.client.Customers.SignUpCustomer(ctx, connect.NewRequest(req))
		if err == nil {
			c := customer{id: res.Msg.GetCustomer().GetId(), email: email}
			s.world.mu.Lock()
			s.world.customers = append(s.world.customers, c)
			s.world.mu.Unlock()
			if rng.Float64() < approve {
				s.world.pushStep(step{kind: stepApprove, customer: c})
			}
		}
		return err
	})
}

func (s *soak) transfer(rng *rand.Rand) {
	legs := 1
	if rng.IntN(10) == 0 {
		legs = 2
	}
	accts := s.world.randomFunded(rng, legs+1)
	if accts == nil {
		s.read(rng) // not enough accounts yet (never after the seeding)
		return
	}
	req := &ledgerv1.MoveMoneyRequest{Currency: "USD", Description: "p2p"}
	for i := range legs {
		// Up to 100.00 a leg, against top-ups of 50.00 to 500.00: most
		// transfers go through, and accounts that drift low get refusals.
		req.Legs = append(req.Legs, &ledgerv1.Leg{FromAccountId: accts[0], ToAccountId: accts[i+1], Amount: 1 + rng.Int64N(10_000)})
	}
	_ = s.call("MoveMoney", func(ctx context.Context) error {
		res, err := s.client.Ledger.MoveMoney(ctx, connect.NewRequest(req))
		if err == nil {
			s.world.addTransfer(res.Msg.GetTransfer().GetId())
		}
		return err
	})
}

func (s *soak) hold(rng *rand.Rand) {
	s.world.mu.Lock()
	var h hold
	// Resolve an old hold half the time, and always once there are many:
	// holds live for seconds, and few are active at once.
	if n := len(s.world.holds); n > 0 && (rng.IntN(2) == 0 || n > 50) {
		h = s.world.holds[0]
		s.world.holds = s.world.holds[1:]
	}
	s.world.mu.Unlock()
	if h.id == "" {
		accts := s.world.randomFunded(rng, 1)
		if accts == nil {
			s.read(rng)
			return
		}
		amount := 1 + rng.Int64N(5_000)
		_ = s.call("HoldFunds", func(ctx context.Context) error {
			res, err := s.client.Ledger.HoldFunds(ctx, connect.NewRequest(&ledgerv1.HoldFundsRequest{
				AccountId: accts[0], Amount: amount, Ttl: durationpb.New(time.Hour), Description: "card authorization",
			}))
			if err == nil {
				s.world.mu.Lock()
				s.world.holds = append(s.world.holds, hold{id: res.Msg.GetHold().GetId(), account: accts[0], amount: amount})
				s.world.mu.Unlock()
			}
			return err
		})
		return
	}
	if rng.IntN(10) < 6 {
		// Capture to another customer's account (a merchant's), or to the
		// settlement account if the draw fell on the hold's own.
		to := s.world.randomFunded(rng, 1)[0]
		if to == h.account {
			s.world.mu.Lock()
			to = s.world.settlement
			s.world.mu.Unlock()
		}
		var amount int64 // 0: all of it
		if rng.IntN(3) == 0 {
			amount = 1 + rng.Int64N(h.amount) // a partial capture, or all of it; what is not captured is freed
		}
		_ = s.call("CaptureHold", func(ctx context.Context) error {
			res, err := s.client.Ledger.CaptureHold(ctx, connect.NewRequest(&ledgerv1.CaptureHoldRequest{HoldId: h.id, ToAccountId: to, Amount: amount, Description: "settle authorization"}))
			if err == nil {
				s.world.addTransfer(res.Msg.GetTransfer().GetId())
			}
			return err
		})
		return
	}
	_ = s.call("ReleaseHold", func(ctx context.Context) error {
		_, err := s.client.Ledger.ReleaseHold(ctx, connect.NewRequest(&ledgerv1.ReleaseHoldRequest{HoldId: h.id}))
		return err
	})
}

// errWrongAnswer is recorded for a call that succeeded with an answer that
// contradicts what the run did before.
var errWrongAnswer = errors.New("wrong answer")

func (s *soak) read(rng *rand.Rand) {
	switch rng.IntN(4) {
	case 0:
		c, ok := s.world.randomCustomer(rng)
		if !ok {
			break
		}
		_ = s.call("GetCustomer", func(ctx context.Context) error {
			res, err := s.client.Customers.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: c.id}))
			if err == nil && res.Msg.GetCustomer().GetEmail() != c.email {
				return fmt.Errorf("%w: customer %s has email %q, signed up with %q", errWrongAnswer, c.id, res.Msg.GetCustomer().GetEmail(), c.email)
			}
			return err
		})
		return
	case 1:
		c, ok := s.world.randomCustomer(rng)
		if !ok {
			break
		}
		_ = s.call("FindCustomerByEmail", func(ctx context.Context) error {
			res, err := s.client.Customers.FindCustomerByEmail(ctx, connect.NewRequest(&customersv1.FindCustomerByEmailRequest{Email: strings.ToUpper(c.email)}))
			if err == nil && res.Msg.GetCustomer().GetId() != c.id {
				return fmt.Errorf("%w: email %q found customer %s, not %s", errWrongAnswer, c.email, res.Msg.GetCustomer().GetId(), c.id)
			}
			return err
		})
		return
	case 2:
		if id := s.world.randomTransfer(rng); id != "" {
			_ = s.call("GetTransfer", func(ctx context.Context) error {
				res, err := s.client.Ledger.GetTransfer(ctx, connect.NewRequest(&ledgerv1.GetTransferRequest{TransferId: id}))
				if err == nil && res.Msg.GetTransfer().GetId() != id {
					return fmt.Errorf("%w: GetTransfer %s returned %s", errWrongAnswer, id, res.Msg.GetTransfer().GetId())
				}
				return err
			})
			return
		}
	}
	accts := s.world.randomFunded(rng, 1)
	if accts == nil {
		return
	}
	_ = s.call("GetBalance", func(ctx context.Context) error {
		_, err := s.client.Ledger.GetBalance(ctx, connect.NewRequest(&ledgerv1.GetBalanceRequest{AccountId: accts[0]}))
		return err
	})
}

func (s *soak) list(rng *rand.Rand) {
	w := s.world
	switch rng.IntN(3) {
	case 0:
		w.mu.Lock()
		token := w.customersPage
		w.mu.Unlock()
		if rng.IntN(5) == 0 {
			token = "" // a fresh listing now and then
		}
		_ = s.call("ListCustomers", func(ctx context.Context) error {
			res, err := s.client.Customers.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 20, PageToken: token}))
			if err == nil {
				w.mu.Lock()
				w.customersPage = res.Msg.GetNextPageToken()
				w.mu.Unlock()
			}
			return err
		})
	case 1:
		w.mu.Lock()
		token := w.transfersPage
		w.mu.Unlock()
		if rng.IntN(5) == 0 {
			token = ""
		}
		_ = s.call("ListTransfers", func(ctx context.Context) error {
			res, err := s.client.Ledger.ListTransfers(ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{PageSize: 50, PageToken: token}))
			if err == nil {
				w.mu.Lock()
				w.transfersPage = res.Msg.GetNextPageToken()
				w.mu.Unlock()
			}
			return err
		})
	default:
		accts := w.randomFunded(rng, 1)
		if accts == nil {
			return
		}
		_ = s.call("ListTransfers (account)", func(ctx context.Context) error {
			_, err := s.client.Ledger.ListTransfers(ctx, connect.NewRequest(&ledgerv1.ListTransfersRequest{PageSize: 20, AccountId: accts[0]}))
			return err
		})
	}
}

// releaseAll releases every hold still active and returns how many.
func (s *soak) releaseAll() int {
	s.world.mu.Lock()
	holds := s.world.holds
	s.world.holds = nil
	s.world.mu.Unlock()
	n := 0
	for _, h := range holds {
		if s.call("ReleaseHold", func(ctx context.Context) error {
			_, err := s.client.Ledger.ReleaseHold(ctx, connect.NewRequest(&ledgerv1.ReleaseHoldRequest{HoldId: h.id}))
			return err
		}) == nil {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// Outcomes and latencies

type opStats struct {
	latencies               []time.Duration
	ok, refused, unexpected int
}

type stats struct {
	mu          sync.Mutex
	ops         map[string]*opStats
	unexpected  map[string]int // "op: code"
	firstErrors []string
}

func newStats() *stats {
	return &stats{ops: map[string]*opStats{}, unexpected: map[string]int{}}
}

// maxErrorsShown is how many unexpected errors are printed in full.
const maxErrorsShown = 10

func (s *stats) record(op string, elapsed time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ops[op]
	if o == nil {
		o = &opStats{}
		s.ops[op] = o
	}
	o.latencies = append(o.latencies, elapsed)
	switch {
	case err == nil:
		o.ok++
	case plinth.Reason(err) == plinth.ReasonInsufficientFunds:
		// The expected refusal: money moves between accounts that can run
		// low.
		o.refused++
	default:
		o.unexpected++
		code := "wrong_answer"
		if !errors.Is(err, errWrongAnswer) {
			code = connect.CodeOf(err).String()
		}
		s.unexpected[op+": "+code]++
		if len(s.firstErrors) < maxErrorsShown {
			s.firstErrors = append(s.firstErrors, op+": "+err.Error())
		}
	}
}

func (s *stats) sum(f func(*opStats) int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.ops {
		n += f(o)
	}
	return n
}

func (s *stats) total() int           { return s.sum(func(o *opStats) int { return len(o.latencies) }) }
func (s *stats) okTotal() int         { return s.sum(func(o *opStats) int { return o.ok }) }
func (s *stats) refusedTotal() int    { return s.sum(func(o *opStats) int { return o.refused }) }
func (s *stats) unexpectedTotal() int { return s.sum(func(o *opStats) int { return o.unexpected }) }

func (s *stats) unexpectedString() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range s.unexpected {
			if !yield(k) {
				return
			}
		}
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, s.unexpected[k])
	}
	return strings.Join(parts, ", ")
}

// report prints a line per operation and one for all: calls, outcomes,
// calls per second over elapsed, latency percentiles.
func (s *stats) report(elapsed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "operation\tcalls\tcalls/s\tok\trefused\terrors\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	var all opStats
	names := make([]string, 0, len(s.ops))
	for name := range s.ops {
		names = append(names, name)
	}
	slices.Sort(names)
	line := func(name string, o *opStats) {
		slices.SortFunc(o.latencies, func(a, b time.Duration) int { return cmp.Compare(a, b) })
		fmt.Fprintf(w, "%s\t%d\t%.1f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", name, len(o.latencies),
			float64(len(o.latencies))/elapsed.Seconds(), o.ok, o.refused, o.unexpected,
			ms(pct(o.latencies, 0.50)), ms(pct(o.latencies, 0.90)), ms(pct(o.latencies, 0.99)), ms(pct(o.latencies, 1)))
	}
	for _, name := range names {
		o := s.ops[name]
		line(name, o)
		all.latencies = append(all.latencies, o.latencies...)
		all.ok += o.ok
		all.refused += o.refused
		all.unexpected += o.unexpected
	}
	line("all", &all)
	w.Flush()
}

// pct returns the p-quantile of sorted (nearest rank); p = 1 is the max.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64)
}

// attemptCounter counts the attempts (each retry is one) that failed with
// a code the SDK retries. It runs inside the SDK's retries.
type attemptCounter struct {
	mu    sync.Mutex
	codes map[connect.Code]int
}

func (a *attemptCounter) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil && plinth.IsRetryable(err) {
			a.mu.Lock()
			a.codes[connect.CodeOf(err)]++
			a.mu.Unlock()
		}
		return res, err
	}
}

func (a *attemptCounter) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *attemptCounter) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (a *attemptCounter) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.codes) == 0 {
		return "none"
	}
	var parts []string
	for code, n := range a.codes {
		parts = append(parts, fmt.Sprintf("%s %d", code, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// ---------------------------------------------------------------------------
// The gateway's /metrics

// sample is one reading of the gateway's /metrics.
type sample struct {
	at         time.Duration // since the load started
	calls      int           // calls the load had completed by then
	goroutines float64
	threads    float64
	heapInuse  float64 // bytes
	rss        float64 // bytes
	openFDs    float64
}

// The series scrape reads, by the names the Go and process collectors of
// client_golang give them (gateway/metrics.go registers both).
var metricNames = []string{"go_goroutines", "go_threads", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "process_open_fds"}

// scrape reads one sample from the Prometheus text at url. It fails if a
// series is missing, naming it.
func scrape(hc *http.Client, url string) (sample, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return sample{}, fmt.Errorf("read %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("read %s: status %s", url, resp.Status)
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(metricNames, name) {
			continue // labelled series have '{' before the space: never ours
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			got[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return sample{}, fmt.Errorf("read %s: %w", url, err)
	}
	var missing []string
	for _, n := range metricNames {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return sample{}, fmt.Errorf("%s lacks %s: the leak check needs the Go and process collectors registered (gateway/metrics.go)", url, strings.Join(missing, ", "))
	}
	return sample{
		goroutines: got["go_goroutines"], threads: got["go_threads"],
		heapInuse: got["go_memstats_heap_inuse_bytes"], rss: got["process_resident_memory_bytes"], openFDs: got["process_open_fds"],
	}, nil
}

type sampler struct {
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	series []sample
}

// startSampler reads /metrics now and every interval until stop.
func startSampler(hc *http.Client, url string, interval time.Duration, load *stats) *sampler {
	sm := &sampler{done: make(chan struct{})}
	start := time.Now()
	take := func() {
		smp, err := scrape(hc, url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: metrics:", err)
			return
		}
		smp.at = time.Since(start)
		smp.calls = load.total()
		sm.mu.Lock()
		sm.series = append(sm.series, smp)
		sm.mu.Unlock()
	}
	sm.wg.Go(func() {
		take()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				take()
			case <-sm.done:
				return
			}
		}
	})
	return sm
}

func (sm *sampler) stop() []sample {
	close(sm.done)
	sm.wg.Wait()
	return sm.series
}

func mib(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) }

func printSeries(series []sample, idle sample, idleErr error, warmup time.Duration) {
	fmt.Printf("gateway /metrics during the load (samples before %v are the warm-up, left out of the leak check):\n", warmup)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "t s\tcalls\tgoroutines\tthreads\theap in use MiB\tRSS MiB\topen fds\t")
	row := func(label string, s sample) {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.0f\t%s\t%s\t%.0f\t\n", label, s.calls, s.goroutines, s.threads, mib(s.heapInuse), mib(s.rss), s.openFDs)
	}
	for _, s := range series {
		row(strconv.Itoa(int(s.at.Round(time.Second).Seconds())), s)
	}
	if idleErr != nil {
		fmt.Fprintf(w, "idle\t(%v)\t\n", idleErr)
	} else {
		fmt.Fprintf(w, "idle after\t-\t%.0f\t%.0f\t%s\t%s\t%.0f\t\n", idle.goroutines, idle.threads, mib(idle.heapInuse), mib(idle.rss), idle.openFDs)
	}
	w.Flush()
}

// verdict is one judgement of the leak check.
type verdict struct {
	ok  bool
	msg string
}

// minJudged is the fewest samples after the warm-up that the leak check
// compares: two a third.
const minJudged = 6

// judge compares the average of the last third of the samples taken after
// the warm-up with that of the first third.
//
// The thresholds, and why:
//
//   - goroutines: fail above first×1.2 + 20. At a constant rate the
//     goroutines in flight are rate × latency, and on a shared machine
//     latency doubles for seconds at a time; the gateway also keeps a
//     goroutine per client connection, and the client opens connections
//     when calls pile up and closes them after 90 s idle. 20% + 20 absorbs
//     both at the rates this tool runs (the series shows open fds moving
//     in step when it is connections). A leak of one goroutine in a
//     hundred calls at 200 calls/s adds 120 a minute: hundreds between the
//     thirds of a five-minute run, far past it.
//   - heap in use: fail above first×1.5. Between two collections the heap
//     grows up to twice the live heap (GOGC=100), so single samples swing
//     by up to 2×; the average of a third's samples damps that to well
//     under 1.5×. A leak of 1 KiB a call at 200 calls/s is 12 MiB a minute
//     against a live heap of a few tens of MiB: past 1.5× within minutes.
//   - resident memory: the same 1.5×: the runtime returns freed memory to
//     the OS lazily, so RSS moves less than the heap, and a run whose RSS
//     grows by half at a steady rate is growing something.
//   - open file descriptors: first×1.2 + 30. They are sockets plus a
//     constant few, and both pools grow on demand when calls pile up: the
//     client's connections (up to --clients) and the gateway's database
//     pool (up to postgres.max_conns, 20 in scripts/soak.sh), so a stall
//     late in a run can add a few tens. A file or connection leaked per
//     call would add thousands a minute.
func judge(series []sample, warmup time.Duration) []verdict {
	var judged []sample
	for _, s := range series {
		if s.at >= warmup {
			judged = append(judged, s)
		}
	}
	if len(judged) < minJudged {
		return []verdict{{false, fmt.Sprintf("leak check: only %d /metrics samples after the %v warm-up, %d needed: run longer or sample more often", len(judged), warmup, minJudged)}}
	}
	third := len(judged) / 3
	first, last := judged[:third], judged[len(judged)-third:]
	avg := func(ss []sample, f func(sample) float64) float64 {
		var t float64
		for _, s := range ss {
			t += f(s)
		}
		return t / float64(len(ss))
	}
	check := func(what string, f func(sample) float64, factor, slack float64, unit func(float64) string) verdict {
		a, b := avg(first, f), avg(last, f)
		limit := a*factor + slack
		msg := fmt.Sprintf("%s flat: %s on average in the first third after the warm-up, %s in the last (limit %s, %+.0f%%)", what, unit(a), unit(b), unit(limit), 100*(b-a)/a)
		if b > limit {
			return verdict{false, strings.Replace(msg, " flat:", " grew:", 1)}
		}
		return verdict{true, msg}
	}
	count := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	mb := func(v float64) string { return mib(v) + " MiB" }
	return []verdict{
		check("goroutines", func(s sample) float64 { return s.goroutines }, 1.2, 20, count),
		check("heap in use", func(s sample) float64 { return s.heapInuse }, 1.5, 0, mb),
		check("resident memory", func(s sample) float64 { return s.rss }, 1.5, 0, mb),
		check("open fds", func(s sample) float64 { return s.openFDs }, 1.2, 30, count),
	}
}
