// Command plinth runs the Plinth gateway.
//
//	plinth dev                 the gateway on 127.0.0.1 with memory backends
//	plinth serve -c FILE       the gateway as configured (docs/configuration.md)
//	plinth migrate up -c FILE  apply pending schema migrations
//	plinth migrate status      list migrations and whether they are applied
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	_ "plinth.dev/plinth/capabilities/all" // every domain and backend
	"plinth.dev/plinth/gateway"
)

type cli struct {
	Dev       devCmd       `cmd:"" help:"Run the gateway on loopback with in-memory backends and no outside services."`
	Serve     serveCmd     `cmd:"" help:"Run the gateway as configured."`
	Migrate   migrateCmd   `cmd:"" help:"Apply or list the PostgreSQL schema migrations of the domains configured for postgres."`
	Bootstrap bootstrapCmd `cmd:"" help:"Give a new deployment its first principal, admin, and print its API key once."`
	Rewrap    rewrapCmd    `cmd:"" help:"After rotating class keys in the keyring, rewrap every stored data key under their latest versions."`
}

// configFlag is the configuration file flag shared by the commands that read
// one. PLINTH_CONFIG is read by this flag, not by gateway.LoadConfig.
type configFlag struct {
	Config string `short:"c" type:"existingfile" env:"PLINTH_CONFIG" placeholder:"FILE" help:"TOML configuration file (see docs/configuration.md). Environment variables PLINTH_* override it."`
}

func (c configFlag) load() (gateway.Config, error) {
	return gateway.LoadConfig(c.Config, environWithout("PLINTH_CONFIG"))
}

func main() {
	var c cli
	ctx := kong.Parse(&c,
		kong.Name("plinth"),
		kong.Description("Plinth: the capabilities fintech products are built from, served by one gateway."),
		kong.UsageOnError(),
	)
	if err := ctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "plinth:", err)
		os.Exit(1)
	}
}

// run configures the gateway, listens and serves until SIGINT or SIGTERM,
// then shuts down gracefully. announce, if not nil, is told the address
// once the gateway is listening, and the admin API key if the gateway had
// to bootstrap one.
//
// A gateway whose principals live in memory has none when it starts, so it
// bootstraps an admin principal and announces its key: nobody could call
// anything otherwise. One with principals in PostgreSQL is bootstrapped
// once, by `plinth bootstrap`.
func run(cfg gateway.Config, log *slog.Logger, announce func(addr, adminKey string)) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	var adminKey string
	if cfg.Backends["access"] == "" || cfg.Backends["access"] == "memory" {
		if adminKey, err = srv.Bootstrap(ctx); err != nil {
			return fmt.Errorf("bootstrap the in-memory principals: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	addr := ln.Addr().String()
	// Announce first: whoever waits for the "listening" line then finds
	// the announcement (and the admin key) already written.
	if announce != nil {
		announce(addr, adminKey)
	}
	log.Info("listening", "addr", addr, "capabilities", len(srv.Capabilities()))
	return srv.Serve(ctx, ln)
}

func newLogger(cfg gateway.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // checked by Config.Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func environWithout(name string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if len(kv) > len(name) && kv[:len(name)+1] == name+"=" {
			continue
		}
		out = append(out, kv)
	}
	return out
}
