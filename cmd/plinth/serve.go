package main

import (
	"fmt"
	"os"
)

type serveCmd struct {
	configFlag
}

func (c *serveCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	return run(cfg, newLogger(cfg.Log, os.Stderr), func(_, adminKey string) {
		if adminKey != "" {
			// Stdout, not the log: a key must not sit in log storage.
			fmt.Printf("Principals live in memory: bootstrapped principal admin. Its API key, shown once:\n\n  %s\n\n", adminKey)
		}
	})
}
