// Command overheadbench measures what the gateway costs on top of the
// capability it serves. In one process, on loopback, it serves the same
// contract twice:
//
//	full   the real gateway (gateway.New) on the in-memory backends:
//	       authentication, authorization, validation, masking, idempotency,
//	       the audit chain, the access log, metrics, request ids and limits
//	bare   a plain connect-go handler over the same customers service and
//	       in-memory store, with no interceptor at all (and, like the
//	       gateway, no gzip for answers under 1 KiB)
//
// and drives GetCustomer (a cheap read) at each with the same HTTP client,
// at each concurrency, for the same time, bare first. It reports calls per
// second, p50 and p99 latency, and allocations per call (of the whole
// process: client and server; the client's share is the same for both, so
// the difference is the gateway's), and the ratio full/bare of throughput.
// docs/benchmarks.md has the figures.
//
//	go run ./cmd/overheadbench --clients 1,8,32 --duration 10s
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/alecthomas/kong"

	_ "plinth.dev/plinth/capabilities/all" // every domain and backend
	"plinth.dev/plinth/capabilities/customers"
	customersmemory "plinth.dev/plinth/capabilities/customers/memory"
	"plinth.dev/plinth/gateway"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

type cli struct {
	Clients    string        `default:"1,8,32" help:"Comma-separated numbers of concurrent clients."`
	Duration   time.Duration `default:"10s" help:"How long each run lasts."`
	CPUProfile string        `name:"cpuprofile" help:"Write a CPU profile of the full gateway's runs to this file (go tool pprof)."`
	MemProfile string        `name:"memprofile" help:"Write an allocation profile of the whole run to this file at the end (go tool pprof -sample_index=alloc_objects)."`
}

// result is one run's figures.
type result struct {
	target    string
	clients   int
	calls     int
	failed    int
	elapsed   time.Duration
	mallocs   uint64
	latencies []time.Duration
}

func (r result) perSecond() float64 { return float64(r.calls) / r.elapsed.Seconds() }

func main() {
	var c cli
	kong.Parse(&c, kong.Description("Measure the gateway's overhead: GetCustomer through the full gateway against a bare connect-go handler."))
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "overheadbench:", err)
		os.Exit(1)
	}
}

func run(c cli) error {
	var levels []int
	for _, s := range strings.Split(c.Clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--clients: %q is not a positive number", s)
		}
		levels = append(levels, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	fullURL, key, stopFull, err := startFull(ctx)
	if err != nil {
		return err
	}
	defer stopFull()
	bareURL, stopBare, err := startBare()
	if err != nil {
		return err
	}
	defer stopBare()

	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	full := customersv1connect.NewCustomerServiceClient(httpClient, fullURL, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	bare := customersv1connect.NewCustomerServiceClient(httpClient, bareURL, plinth.WithIdempotencyKeys())
	fullID, err := signUp(ctx, full)
	if err != nil {
		return fmt.Errorf("full gateway: %w", err)
	}
	bareID, err := signUp(ctx, bare)
	if err != nil {
		return fmt.Errorf("bare handler: %w", err)
	}

	var profile *os.File
	if c.CPUProfile != "" {
		if profile, err = os.Create(c.CPUProfile); err != nil {
			return err
		}
		defer profile.Close()
	}
	var results []result
	for _, n := range levels {
		for _, t := range []struct {
			name   string
			client customersv1connect.CustomerServiceClient
			id     string
		}{{"bare", bare, bareID}, {"full", full, fullID}} {
			if profile != nil && t.name == "full" {
				if err := pprof.StartCPUProfile(profile); err != nil {
					return err
				}
			}
			r := load(ctx, t.client, t.id, n, c.Duration)
			if profile != nil && t.name == "full" {
				pprof.StopCPUProfile()
				profile = nil // one profile: the first full run's
			}
			r.target = t.name
			fmt.Fprintf(os.Stderr, "%s x%d: %.0f calls/s\n", t.name, n, r.perSecond())
			results = append(results, r)
		}
	}
	report(results)
	if c.MemProfile != "" {
		f, err := os.Create(c.MemProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.failed > 0 {
			return fmt.Errorf("%d calls of %s x%d failed", r.failed, r.target, r.clients)
		}
	}
	return nil
}

// startFull starts the real gateway on the in-memory backends and returns
// its URL and an admin key. Its log (one line per call, as in production)
// is formatted and thrown away.
func startFull(ctx context.Context) (url, key string, stop func(), err error) {
	cfg := gateway.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return "", "", nil, err
	}
	key, err = srv.Bootstrap(ctx)
	if err != nil {
		srv.Close()
		return "", "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return "", "", nil, err
	}
	serveCtx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, ln) }()
	return "http://" + ln.Addr().String(), key, func() {
		cancel()
		<-served
		srv.Close()
	}, nil
}

// startBare serves the customers service over an in-memory store with
// nothing around it, as connect-go does out of the box.
func startBare() (url string, stop func(), err error) {
	mux := http.NewServeMux()
	// The gateway does not gzip answers under 1 KiB; neither does the bare
	// handler, so that the comparison is of the gateway's layers only.
	mux.Handle(customersv1connect.NewCustomerServiceHandler(customers.NewService(customersmemory.New()),
		connect.WithCompressMinBytes(1024)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func signUp(ctx context.Context, client customersv1connect.CustomerServiceClient) (string, error) {
	res, err := client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name: "Ada Lovelace", Email: "ada@example.com",
	}))
	if err != nil {
		return "", err
	}
	return res.Msg.GetCustomer().GetId(), nil
}

// load calls GetCustomer from n goroutines for d.
func load(ctx context.Context, client customersv1connect.CustomerServiceClient, id string, n int, d time.Duration) result {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var (
		mu     sync.Mutex
		r      = result{clients: n}
		wg     sync.WaitGroup
		start  = time.Now()
		finish = start.Add(d)
	)
	for range n {
		wg.Go(func() {
			var lat []time.Duration
			failed := 0
			req := connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: id})
			for time.Now().Before(finish) {
				t0 := time.Now()
				_, err := client.GetCustomer(ctx, req)
				if err != nil {
					failed++
					if failed == 1 && !errors.Is(err, context.Canceled) {
						fmt.Fprintln(os.Stderr, "GetCustomer:", err)
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			r.latencies = append(r.latencies, lat...)
			r.failed += failed
			mu.Unlock()
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	runtime.ReadMemStats(&after)
	r.calls = len(r.latencies)
	r.mallocs = after.Mallocs - before.Mallocs
	slices.Sort(r.latencies)
	return r
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func report(results []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "target\tclients\tcalls/s\tp50 ms\tp99 ms\tallocs/call\tfull/bare\t")
	var bare result
	for _, r := range results {
		ratio := ""
		if r.target == "bare" {
			bare = r
		} else if bare.calls > 0 {
			ratio = fmt.Sprintf("%.2f", r.perSecond()/bare.perSecond())
		}
		allocs := uint64(0)
		if r.calls > 0 {
			allocs = r.mallocs / uint64(r.calls)
		}
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.3f\t%.3f\t%d\t%s\t\n", r.target, r.clients, r.perSecond(),
			float64(percentile(r.latencies, 0.50).Microseconds())/1000,
			float64(percentile(r.latencies, 0.99).Microseconds())/1000, allocs, ratio)
	}
	w.Flush()
}
