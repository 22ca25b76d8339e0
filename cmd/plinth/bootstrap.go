package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"plinth.dev/plinth/gateway"
)

type bootstrapCmd struct{ configFlag }

// Run gives a deployment whose principals live in PostgreSQL its first
// principal, admin, and prints its API key once; a deployment that has a
// principal already is left as it is.
func (c *bootstrapCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := gateway.New(ctx, cfg, newLogger(cfg.Log, os.Stderr))
	if err != nil {
		return err
	}
	defer srv.Close()
	key, err := srv.Bootstrap(ctx)
	if err != nil {
		return err
	}
	if key == "" {
		fmt.Println("This deployment has principals already; nothing was changed. Issue keys with IssueApiKey.")
		return nil
	}
	fmt.Printf("Bootstrapped principal admin. Its API key, shown this once; keep it in your secret store:\n\n  %s\n\n", key)
	return nil
}
