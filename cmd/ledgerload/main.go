// Command ledgerload drives MoveMoney through a running gateway over HTTP
// and reports transfers per second and latency percentiles, then checks the
// ledger's invariants. scripts/bench-ledger.sh runs it against PostgreSQL
// beside pgbench's tpcb-like script; docs/benchmarks.md has the figures.
//
//	ledgerload --url http://127.0.0.1:8080 --concurrency 1,8,32 --duration 10s
//
// Two workloads run at each concurrency:
//
//	spread   each worker moves money between its own two accounts: no two
//	         workers touch the same row (like pgbench, whose branches
//	         spread the load)
//	hot      every worker moves money between the same two accounts, so
//	         every transfer waits for the one before it
package main

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/alecthomas/kong"

	"plinth.dev/plinth/internal/ledgercheck"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

type cli struct {
	URL         string        `default:"http://127.0.0.1:8080" help:"Base URL of the gateway."`
	APIKey      string        `name:"api-key" env:"PLINTH_API_KEY" required:"" help:"API key of a principal with the ledger scopes (plinth bootstrap prints one)."`
	Concurrency string        `default:"1,8,32" help:"Comma-separated numbers of concurrent clients."`
	Duration    time.Duration `default:"10s" help:"How long each run lasts."`
	Workloads   string        `default:"spread,hot" help:"Comma-separated workloads: spread, hot."`
	Protocol    string        `default:"connect" enum:"connect,grpc" help:"Wire protocol: connect (HTTP/1.1, binary) or grpc (h2c)."`
}

// result is one run's figures.
type result struct {
	workload    string
	concurrency int
	transfers   int
	refused     int
	failed      int
	elapsed     time.Duration
	latencies   []time.Duration
}

func main() {
	var c cli
	kong.Parse(&c, kong.Description("Load MoveMoney through the gateway and report throughput and latency."))
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerload:", err)
		os.Exit(1)
	}
}

func run(c cli) error {
	var levels []int
	for _, s := range strings.Split(c.Concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--concurrency: %q is not a positive number", s)
		}
		levels = append(levels, n)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}
	opts := []connect.ClientOption{plinth.WithAPIKey(c.APIKey), plinth.WithIdempotencyKeys()}
	if c.Protocol == "grpc" {
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetUnencryptedHTTP2(true)
		opts = append(opts, connect.WithGRPC())
	}
	client := ledgerv1connect.NewLedgerServiceClient(&http.Client{Transport: transport}, c.URL, opts...)
	ctx := context.Background()

	var (
		results  []result
		accounts []string
	)
	for _, workload := range strings.Split(c.Workloads, ",") {
		for _, n := range levels {
			r, accts, err := runOnce(ctx, client, strings.TrimSpace(workload), n, c.Duration)
			if err != nil {
				return err
			}
			results = append(results, r)
			accounts = append(accounts, accts...)
			fmt.Fprintf(os.Stderr, "%s x%d: %.0f transfers/s\n", r.workload, n, float64(r.transfers)/r.elapsed.Seconds())
		}
	}
	report(results)
	checked, err := ledgercheck.Check(ctx, client, accounts)
	if err != nil {
		return err
	}
	fmt.Println(checked)
	return nil
}

// runOnce opens fresh accounts for a run, funds them, and moves money for
// d with n workers.
func runOnce(ctx context.Context, client ledgerv1connect.LedgerServiceClient, workload string, n int, d time.Duration) (result, []string, error) {
	settlement, err := openAccount(ctx, client, ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED)
	if err != nil {
		return result{}, nil, err
	}
	pairs := n
	if workload == "hot" {
		pairs = 1
	} else if workload != "spread" {
		return result{}, nil, fmt.Errorf("unknown workload %q (want spread or hot)", workload)
	}
	accounts := []string{settlement}
	for range 2 * pairs {
		id, err := openAccount(ctx, client, ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
		if err != nil {
			return result{}, nil, err
		}
		// Enough that no run drains an account: refusals measure nothing.
		if _, err := client.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
			Currency: "USD",
			Legs:     []*ledgerv1.Leg{{FromAccountId: settlement, ToAccountId: id, Amount: 1_000_000_000}},
		})); err != nil {
			return result{}, nil, fmt.Errorf("fund account: %w", err)
		}
		accounts = append(accounts, id)
	}

	r := result{workload: workload, concurrency: n}
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range n {
		pair := accounts[1+2*(w%pairs) : 3+2*(w%pairs)]
		wg.Go(func() {
			var local result
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for time.Now().Before(deadline) {
				from, to := pair[0], pair[1]
				if rng.IntN(2) == 0 {
					from, to = to, from
				}
				t0 := time.Now()
				_, err := client.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
					Currency:    "USD",
					Legs:        []*ledgerv1.Leg{{FromAccountId: from, ToAccountId: to, Amount: int64(1 + rng.IntN(100))}},
					Description: "load",
				}))
				local.latencies = append(local.latencies, time.Since(t0))
				switch code := connect.CodeOf(err); {
				case err == nil:
					local.transfers++
				case code == connect.CodeFailedPrecondition:
					local.refused++
				default:
					local.failed++
					if local.failed == 1 {
						fmt.Fprintln(os.Stderr, "ledgerload: a transfer failed:", err)
					}
				}
			}
			mu.Lock()
			r.transfers += local.transfers
			r.refused += local.refused
			r.failed += local.failed
			r.latencies = append(r.latencies, local.latencies...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r, accounts, nil
}

func openAccount(ctx context.Context, client ledgerv1connect.LedgerServiceClient, policy ledgerv1.BalancePolicy) (string, error) {
	res, err := client.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{
		Currency: "USD", BalancePolicy: policy, Description: "ledgerload",
	}))
	if err != nil {
		return "", fmt.Errorf("open account: %w", err)
	}
	return res.Msg.GetAccount().GetId(), nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func report(results []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "workload\tclients\ttransfers/s\tp50 ms\tp99 ms\trefused\tfailed\t")
	for _, r := range results {
		slices.SortFunc(r.latencies, func(a, b time.Duration) int { return cmp.Compare(a, b) })
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%d\t\n", r.workload, r.concurrency,
			float64(r.transfers)/r.elapsed.Seconds(),
			float64(percentile(r.latencies, 0.50).Microseconds())/1000,
			float64(percentile(r.latencies, 0.99).Microseconds())/1000,
			r.refused, r.failed)
	}
	w.Flush()
}
