package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Server is a throwaway PostgreSQL server that only one test uses, which
// the test may stop and start again: a database outage, without disturbing
// the tests that share the server of NewDatabase. NewServer returns it.
//
// It is always a server that pgtest starts from the installed binaries,
// even when PLINTH_TEST_DATABASE_URL names a server for NewDatabase: that
// one is not pgtest's to stop.
type Server struct {
	srv *server
	url string // of the test's database

	mu      sync.Mutex
	running bool
}

var (
	privateMu sync.Mutex
	private   = map[*Server]bool{} // servers of NewServer not yet stopped for good, for Main
)

// NewServer starts a PostgreSQL server of the test's own, with one empty
// database (URL), and stops it and deletes its files when the test and its
// subtests end. Its superuser, postgres, logs in without a password, as on
// the shared server. Unlike the shared server it acknowledges a commit only
// once the commit's WAL is written, so that Stop, which stops the server as
// a crash would, loses no commit a client was told of.
//
// NewServer skips the test when no server can be had, or fails it under CI
// or the test command, as NewDatabase does. It takes a few seconds (initdb):
// use it only for tests that stop the server.
func NewServer(t testing.TB) *Server {
	t.Helper()
	srv, err := startThrowaway("synchronous_commit = on")
	if err != nil {
		msg := "pgtest: no PostgreSQL server of its own for this test: " + err.Error()
		if os.Getenv("CI") != "" || os.Getenv(EnvRequirePostgres) != "" || os.Getenv(EnvDatabaseURL) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (install PostgreSQL; under CI or scripts/test.sh this fails instead of skipping)")
	}
	s := &Server{srv: srv, running: true}
	privateMu.Lock()
	private[s] = true
	privateMu.Unlock()
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})

	name, err := databaseName(t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := srv.exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	u := *srv.adminURL
	u.Path = "/" + name
	u.RawPath = ""
	s.url = u.String()
	return s
}

// URL returns the connection URL of the server's database, the same
// whether the server runs or not.
func (s *Server) URL() string { return s.url }

// Running reports whether the server runs (Stop has not stopped it, or
// Start started it again).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Stop stops the server as a crash would (pg_ctl stop -m immediate): every
// session ends at once, whatever it was doing, and new connections are
// refused until Start. Data committed before survives. Stopping a stopped
// server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if out, err := s.srv.run(ctx, s.srv.pgCtl, "stop", "-D", filepath.Join(s.srv.dir, "data"), "-m", "immediate", "-w"); err != nil {
		return fmt.Errorf("pgtest: stop the server on port %d: %w\n%s", s.srv.port, err, tail(out))
	}
	s.running = false
	return nil
}

// Start starts the server again after Stop, on the same port (so URL still
// names it), and waits until it accepts connections; it recovers from the
// crash first, as PostgreSQL does. Starting a running server does nothing.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.srv.start(ctx, s.srv.port); err != nil {
		return fmt.Errorf("pgtest: start the server again on port %d: %w", s.srv.port, err)
	}
	s.running = true
	return nil
}

// close stops the server, if it runs, and deletes its files.
func (s *Server) close() error {
	privateMu.Lock()
	delete(private, s)
	privateMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		if err := os.RemoveAll(s.srv.dir); err != nil {
			return fmt.Errorf("delete the throwaway PostgreSQL server's directory: %w", err)
		}
		return nil
	}
	s.running = false
	return s.srv.stop()
}

// closePrivate stops the servers of NewServer that are still there (a
// test's cleanup did not run), for Main.
func closePrivate() error {
	privateMu.Lock()
	servers := make([]*Server, 0, len(private))
	for s := range private {
		servers = append(servers, s)
	}
	privateMu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}
