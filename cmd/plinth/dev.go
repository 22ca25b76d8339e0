package main

import (
	"fmt"
	"net"
	"os"

	"plinth.dev/plinth/gateway"
)

type devCmd struct {
	Listen   string `default:"127.0.0.1:8080" help:"Loopback address to listen on (port 0 picks a free one)."`
	LogLevel string `default:"info" enum:"debug,info,warn,error" help:"Log level."`
}

// Run starts the gateway with the default configuration: memory backends,
// nothing from files or the environment, logs as text.
func (c *devCmd) Run() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen: want host:port such as 127.0.0.1:8080, got %q", c.Listen)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		// Dev mode prints an admin key and keeps everything in memory: it
		// is for a developer's own machine.
		return fmt.Errorf("--listen: dev mode is for your own machine, so it listens on loopback only (127.0.0.1 or ::1), not %q", host)
	}
	cfg := gateway.DefaultConfig()
	cfg.Listen = c.Listen
	cfg.Log = gateway.LogConfig{Level: c.LogLevel, Format: "text"}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return run(cfg, newLogger(cfg.Log, os.Stderr), func(addr, adminKey string) {
		base := "http://" + addr
		fmt.Printf(`
Plinth dev mode: in-memory backends, no outside services; data is lost when it stops.
Listening on %[1]s (loopback only).

The admin principal's API key (every scope; a new one at each start):

  %[2]s

Sign up a customer:

  curl -sS -X POST %[1]s/plinth.customers.v1.CustomerService/SignUpCustomer \
    -H 'Authorization: Bearer %[2]s' \
    -H 'Content-Type: application/json' \
    -H 'Idempotency-Key: sign-up-ada-1' \
    -d '{"name": "Ada Lovelace", "email": "ada@example.com"}'

(Run it twice: the same Idempotency-Key gets the same answer, and Ada signs up once.)

Every capability, its contract and a curl example for each:  %[1]s/catalog
Or from a terminal:  buf curl --protocol connect --http2-prior-knowledge --list-methods %[1]s
Health: %[1]s/healthz  Readiness: %[1]s/readyz  Metrics: %[1]s/metrics
Stop with Ctrl-C.

`, base, adminKey)
	})
}
