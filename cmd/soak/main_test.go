package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	w, err := parseMix("signup=10, transfer=35,hold=15,read=25,list=15")
	if err != nil || w != [numKinds]float64{10, 35, 15, 25, 15} {
		t.Fatalf("parseMix: %v, %v", w, err)
	}
	if w, err := parseMix("transfer=1"); err != nil || w != [numKinds]float64{0, 1, 0, 0, 0} {
		t.Fatalf("parseMix of one kind: %v, %v", w, err)
	}
	for _, bad := range []string{"", "signup", "signup=x", "signup=-1", "pay=3", "signup=0,list=0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
}

// series makes one sample every 10 s for 2 minutes, f giving the value of
// every metric at second s.
func series(f func(s float64) float64) []sample {
	var out []sample
	for s := 0; s <= 120; s += 10 {
		v := f(float64(s))
		out = append(out, sample{at: time.Duration(s) * time.Second, goroutines: v, heapInuse: v * 1e6, rss: v * 1e6, openFDs: v})
	}
	return out
}

func TestJudge(t *testing.T) {
	// A heap that swings by 2x between collections, around a flat level,
	// is flat.
	swinging := series(func(s float64) float64 {
		if int(s/10)%2 == 0 {
			return 100
		}
		return 190
	})
	for _, v := range judge(swinging, 20*time.Second) {
		if !v.ok {
			t.Errorf("flat series judged: %s", v.msg)
		}
	}
	// A series that doubles over the run grows, for every metric.
	growing := series(func(s float64) float64 { return 100 + 2*s })
	for _, v := range judge(growing, 20*time.Second) {
		if v.ok || !strings.Contains(v.msg, "grew") {
			t.Errorf("growing series judged: %v %s", v.ok, v.msg)
		}
	}
	// Too few samples after the warm-up: not judged, and said so.
	if v := judge(growing, 80*time.Second); len(v) != 1 || v[0].ok || !strings.Contains(v[0].msg, "samples") {
		t.Errorf("short series judged: %+v", v)
	}
}

func TestScrape(t *testing.T) {
	body := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_threads 9
go_memstats_heap_inuse_bytes 1.2345e+07
go_gc_duration_seconds{quantile="0"} 1e-05
process_resident_memory_bytes 5.0e+07
process_open_fds 17
plinth_capability_calls_total{capability="/x",code="ok"} 3
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bare" {
			fmt.Fprintln(w, "plinth_capability_calls_total 1")
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	got, err := scrape(srv.Client(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := sample{goroutines: 42, threads: 9, heapInuse: 12345000, rss: 5e7, openFDs: 17}
	if got != want {
		t.Errorf("scrape = %+v, want %+v", got, want)
	}
	if _, err := scrape(srv.Client(), srv.URL+"/bare"); err == nil || !strings.Contains(err.Error(), "go_goroutines") {
		t.Errorf("scrape of metrics without the runtime series: %v", err)
	}
}

func TestPct(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := pct(d, p); got != want {
			t.Errorf("pct(%v) = %v, want %v", p, got, want)
		}
	}
	if pct(nil, 0.5) != 0 {
		t.Error("pct of nothing is not 0")
	}
}
