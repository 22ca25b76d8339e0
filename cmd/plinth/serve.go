package main

import (
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
	return run(cfg, newLogger(cfg.Log, os.Stderr), nil)
}
