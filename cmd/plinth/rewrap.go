package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"plinth.dev/plinth/gateway"
)

type rewrapCmd struct{ configFlag }

// Run rewraps the stored data keys of every domain that keeps sealed data,
// so that nothing depends on a class key's old versions any more (and they
// can be retired in the keyring).
func (c *rewrapCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	srv, err := gateway.New(ctx, cfg, newLogger(cfg.Log, os.Stderr))
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Rewrap(ctx, func(domain string, n int) {
		fmt.Printf("%s: %d record(s) rewrapped\n", domain, n)
	})
}
