// Package pgtest gives tests a PostgreSQL database of their own.
//
// A test calls NewDatabase and gets the URL of a fresh, empty database that
// is dropped when the test ends. The databases live on one server per test
// binary:
//
//   - if PLINTH_TEST_DATABASE_URL is set, the server it points at (the
//     URL's user must be allowed to CREATE DATABASE);
//   - otherwise a throwaway server that pgtest starts from the installed
//     PostgreSQL binaries on first use, in a temporary directory, and stops
//     and deletes when the binary's TestMain calls Main. Its superuser,
//     postgres, logs in without a password; any other role a test creates
//     must give its password (scram-sha-256).
//
// A package that uses NewDatabase must have
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// or the throwaway server outlives the test binary.
//
// When no server can be had (no binaries installed, say), NewDatabase skips
// the test, except under CI (the CI environment variable is set) or the
// README's test command (which sets PLINTH_TEST_REQUIRE_POSTGRES), where it
// fails it: a run that silently skipped the database tests would pass while
// testing nothing. If PLINTH_TEST_DATABASE_URL is set but unusable
// the test fails too: someone asked for that server.
//
// NewDatabase is safe to call from parallel tests, and several test
// binaries can run at once (go test runs packages in parallel): each binary
// starts its own throwaway server on a port of its own.
//
// A test that stops and starts PostgreSQL (an outage) calls NewServer
// instead: a server of its own, which Stop and Start do not share with
// anyone.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the environment variable that points tests at an
// existing server instead of a throwaway one, e.g.
// postgres://postgres:secret@localhost:5432/postgres?sslmode=disable.
// Only URLs (postgres:// or postgresql://) are accepted, not key=value
// connection strings, because NewDatabase rewrites the database name.
const EnvDatabaseURL = "PLINTH_TEST_DATABASE_URL"

// EnvRequirePostgres names the environment variable that makes a missing
// server fail tests rather than skip them, as CI does; scripts/test.sh sets it.
const EnvRequirePostgres = "PLINTH_TEST_REQUIRE_POSTGRES"

// Time limits. They are generous because CI machines are slow and shared.
const (
	startTimeout = 60 * time.Second // initdb + start + ready
	adminTimeout = 30 * time.Second // one CREATE or DROP DATABASE
	stopTimeout  = 30 * time.Second
)

var (
	serverOnce sync.Once
	srv        *server // nil until serverOnce ran, or if there is none
	srvErr     error   // why there is no server
)

// server is the PostgreSQL server of this test binary.
type server struct {
	adminURL *url.URL // a URL for CREATE/DROP DATABASE; its path names the maintenance database

	// Set only for a throwaway server that pgtest started.
	dir    string   // temporary directory holding data/, the socket and the log
	port   int      // the port it listens on
	pgCtl  string   // path of pg_ctl
	asUser []string // "runuser -u postgres --" when running as root, else empty
}

// Main runs the tests of m and then stops the throwaway server, if one was
// started, and any server of NewServer still running, and deletes their
// files. It returns m.Run's exit code, for
// os.Exit. If stopping fails, it says so on stderr and returns 1 when the
// tests had passed, so that a leaked server does not go unnoticed.
func Main(m *testing.M) int {
	code := m.Run()
	if err := closePrivate(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if srv != nil && srv.dir != "" {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewDatabase returns a connection URL for a new, empty database that only
// this test uses. The database is dropped (WITH (FORCE), so connections the
// test left open do not stop it) when the test and its subtests end.
//
// NewDatabase skips the test when no PostgreSQL server can be had, or fails
// it under CI or the test command; see the package doc.
func NewDatabase(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() { srv, srvErr = getServer() })
	if srvErr != nil {
		msg := "pgtest: no PostgreSQL server for this test: " + srvErr.Error()
		if os.Getenv("CI") != "" || os.Getenv(EnvRequirePostgres) != "" || os.Getenv(EnvDatabaseURL) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (set " + EnvDatabaseURL + " or install PostgreSQL; under CI or scripts/test.sh this fails instead of skipping)")
	}

	name, err := databaseName(t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := srv.exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// The test's own context is done by now: use a fresh one.
		if err := srv.exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *srv.adminURL
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

var unsafeInName = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName returns a unique database name that starts with the test's
// name, so that a database left behind (by a killed test binary) says
// where it came from. PostgreSQL cuts identifiers at 63 bytes.
func databaseName(testName string) (string, error) {
	var random [6]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", fmt.Errorf("random database name: %w", err)
	}
	readable := strings.Trim(unsafeInName.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	if len(readable) > 40 {
		readable = readable[:40]
	}
	return "pgtest_" + readable + "_" + hex.EncodeToString(random[:]), nil
}

// exec runs one statement on the maintenance database.
func (s *server) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.adminURL.String())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// getServer returns the server named by EnvDatabaseURL, or starts a
// throwaway one.
func getServer() (*server, error) {
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// Not the parse error itself: it would repeat the password.
			return nil, fmt.Errorf("%s must be a postgres:// URL", EnvDatabaseURL)
		}
		s := &server{adminURL: u}
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := s.exec(ctx, "SELECT 1"); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvDatabaseURL, err)
		}
		return s, nil
	}
	return startServer()
}

// startServer starts a throwaway server, retrying with another port if the
// one it picked was taken in the meantime (by a test binary running next
// to this one, say).
func startServer() (*server, error) {
	return startThrowaway("synchronous_commit = off")
}

// startThrowaway starts a throwaway server as startServer says, with
// commitConf as its synchronous_commit setting: off for the shared server
// (a commit is acknowledged before its WAL is written, so a crash loses the
// last moments, which no test of the shared server does), on for a server
// of NewServer, which a test stops as a crash would and whose
// acknowledged commits must survive it.
func startThrowaway(commitConf string) (*server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "plinth-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	s := &server{dir: dir, pgCtl: filepath.Join(bin, "pg_ctl")}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()

	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root: run them as the
		// postgres user, who must own everything they write.
		if err := chownToPostgres(dir); err != nil {
			return nil, err
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return nil, fmt.Errorf("running as root, and runuser (needed to run PostgreSQL as the postgres user) is not installed: %w", err)
		}
		s.asUser = []string{runuser, "-u", "postgres", "--"}
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	data := filepath.Join(dir, "data")
	if out, err := s.run(ctx, filepath.Join(bin, "initdb"), "-D", data,
		"--auth=trust", "-U", "postgres", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, tail(out))
	}

	// A throwaway server trades durability for speed: a crash loses it
	// whole, and nobody minds.
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = off
%s
full_page_writes = off
max_connections = 200
`, dir, commitConf)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	// The superuser logs in without a password, as every URL NewDatabase
	// returns expects; any other role must give its password over TCP, as
	// in production, so that a test of credentials (Vault's dynamic roles,
	// say) fails on a wrong or expired one.
	hba := `local all all                  trust
host  all postgres 127.0.0.1/32 trust
host  all postgres ::1/128      trust
host  all all      127.0.0.1/32 scram-sha-256
host  all all      ::1/128      scram-sha-256
`
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, fmt.Errorf("pg_hba.conf: %w", err)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if lastErr = s.start(ctx, port); lastErr == nil {
			ok = true
			return s, nil
		}
	}
	return nil, lastErr
}

// start starts the server on port and waits until it accepts connections.
func (s *server) start(ctx context.Context, port int) error {
	data := filepath.Join(s.dir, "data")
	logFile := filepath.Join(s.dir, "server.log")
	_ = os.Remove(logFile) // keep only this attempt's log
	timeout := strconv.Itoa(int(startTimeout.Seconds()))
	if out, err := s.run(ctx, s.pgCtl, "start", "-D", data, "-l", logFile, "-w", "-t", timeout,
		"-o", "-p "+strconv.Itoa(port)); err != nil {
		// pg_ctl may have given up on a server that is still starting.
		_, _ = s.run(context.Background(), s.pgCtl, "stop", "-D", data, "-m", "immediate", "-w")
		return fmt.Errorf("pg_ctl start: %w\n%s\nserver log:\n%s", err, tail(out), logTail(logFile))
	}
	s.port = port
	s.adminURL = &url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	// pg_ctl -w has waited for the server already; connecting over TCP,
	// as the tests will, proves it listens where the URL says.
	var err error
	for {
		if err = s.exec(ctx, "SELECT 1"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			_, _ = s.run(context.Background(), s.pgCtl, "stop", "-D", data, "-m", "immediate", "-w")
			return fmt.Errorf("server started but does not accept connections on port %d: %w\nserver log:\n%s", port, err, logTail(logFile))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop stops the throwaway server, without the shutdown checkpoint (its
// data is about to be deleted), and deletes its directory.
func (s *server) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	out, err := s.run(ctx, s.pgCtl, "stop", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w")
	if err != nil {
		// Keep the directory: its log says why, and the server may still
		// be running from it.
		return fmt.Errorf("stop the throwaway PostgreSQL server in %s: %w\n%s", s.dir, err, tail(out))
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("delete the throwaway PostgreSQL server's directory: %w", err)
	}
	return nil
}

// run runs a PostgreSQL program, as the postgres user when running as root,
// and returns its combined output.
func (s *server) run(ctx context.Context, program string, args ...string) ([]byte, error) {
	argv := append(slices.Clone(s.asUser), program)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// The postgres user may not be allowed into the test's directory.
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// findBinaries returns the directory that holds both initdb and pg_ctl: the
// one on PATH if any, else the newest /usr/lib/postgresql/<version>/bin
// (where Debian and Ubuntu put them, off PATH).
func findBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	installed, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(installed, func(a, b string) int { // newest first
		return majorVersion(b) - majorVersion(a)
	})
	dirs = append(dirs, installed...)
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", errors.New("found no PostgreSQL server binaries (initdb and pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
}

// majorVersion returns the version in /usr/lib/postgresql/<version>/bin, or
// 0.
func majorVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// chownToPostgres gives dir to the postgres user.
func chownToPostgres(dir string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root, so PostgreSQL must run as the postgres user, who does not exist: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("uid of the postgres user: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("gid of the postgres user: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("give %s to the postgres user: %w", dir, err)
	}
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
// Someone else may take it before the server does; startServer retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tail returns the last lines of a program's output, enough to say why it
// failed without flooding the test log.
func tail(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return tail(b)
}
