package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

type serveCmd struct {
	configFlag
	CPUProfile string `name:"cpuprofile" type:"path" placeholder:"FILE" help:"Write a CPU profile of the gateway to FILE until it stops (go tool pprof), to see where its time goes under load."`
}

func (c *serveCmd) Run() error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return run(cfg, newLogger(cfg.Log, os.Stderr), func(_, adminKey string) {
		if adminKey != "" {
			// Stdout, not the log: a key must not sit in log storage.
			fmt.Printf("Principals live in memory: bootstrapped principal admin. Its API key, shown once:\n\n  %s\n\n", adminKey)
		}
	})
}
