// Package vaulttest gives tests a real Vault server: a dev server
// (`vault server -dev`), in memory, unsealed, with a root token.
//
// Start returns the server that all the tests of a test binary share; it is
// started on first use, on a free port of 127.0.0.1, with a random root
// token, and with HOME and every VAULT_ environment variable of its own, so
// that neither the developer's Vault settings nor their token file take part.
// A test keeps out of the other tests' way by enabling the engines it needs
// at mounts of its own (EnableTransit, EnableKV, and EnablePostgres, which
// also prepares a PostgreSQL database for Vault's database secrets engine).
// NewServer starts a server that only one test uses, for tests that Stop
// and Restart it.
//
// The binary is the one named by PLINTH_TEST_VAULT_BIN, or else
// .cache/vault/vault in the repository, where `scripts/vault.sh build`
// builds it. A package that uses Start or NewServer must have
//
//	func TestMain(m *testing.M) { os.Exit(vaulttest.Main(m)) }
//
// or the servers outlive the test binary (on Linux they are killed when the
// test binary dies, but not before).
//
// When there is no binary, Start and NewServer skip the test, except under
// CI (the CI environment variable is set) or the README's test command (which
// sets PLINTH_TEST_REQUIRE_VAULT), where they fail it: a run that silently
// skipped the Vault tests would pass while testing nothing.
//
// A dev server keeps everything in memory: a server that is stopped and
// restarted (Stop, Restart) comes back empty, with the same address and
// root token but none of the mounts, keys or secrets it had.
package vaulttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// EnvVaultBin names the environment variable that points tests at a Vault
// binary other than the repository's .cache/vault/vault.
const EnvVaultBin = "PLINTH_TEST_VAULT_BIN"

// EnvRequireVault names the environment variable that makes a missing Vault
// binary fail tests rather than skip them, as CI does; scripts/test.sh sets it.
const EnvRequireVault = "PLINTH_TEST_REQUIRE_VAULT"

// Time limits. They are generous because CI machines are slow and shared,
// and the Vault binary is large (its first start reads ~480 MB from disk).
const (
	startTimeout  = 90 * time.Second // process start until sys/health says unsealed
	stopTimeout   = 15 * time.Second
	clientTimeout = 30 * time.Second // one API call of a Client
)

var (
	sharedOnce sync.Once
	shared     *Server // nil until sharedOnce ran, or if there is none
	sharedErr  error   // why there is no shared server

	liveMu sync.Mutex
	live   = map[*Server]bool{} // servers started and not yet closed, for Main
)

// Server is a running (or stopped) Vault dev server.
type Server struct {
	// Addr is the server's address, as a client wants it:
	// http://127.0.0.1:<port>.
	Addr string
	// Token is the root token. It is random, and stays the same across
	// Restart.
	Token string

	bin    string // the vault binary
	dir    string // HOME of the server: its log and nothing else
	listen string // 127.0.0.1:<port>

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the server.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
	err    error         // what cmd.Wait returned; read after exited is closed
}

// Main runs the tests of m and then stops every server that Start and
// NewServer started and deletes their files. It returns m.Run's exit code,
// for os.Exit. If cleaning up fails, it says so on stderr and returns 1 when
// the tests had passed, so that a leaked server does not go unnoticed.
func Main(m *testing.M) int {
	code := m.Run()
	liveMu.Lock()
	servers := make([]*Server, 0, len(live))
	for s := range live {
		servers = append(servers, s)
	}
	liveMu.Unlock()
	for _, s := range servers {
		if err := s.close(); err != nil {
			fmt.Fprintf(os.Stderr, "vaulttest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Start returns the Vault dev server that the tests of this test binary
// share, starting it on first use. Tests that share it must not Stop it (use
// NewServer for that), and should keep their data apart by enabling engines
// at mounts of their own (EnableTransit, EnableKV).
//
// Start skips the test when there is no Vault binary, or fails it under CI
// or the test command; see the package doc.
func Start(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = startServer() })
	if sharedErr != nil {
		fail(t, sharedErr)
	}
	return shared
}

// NewServer starts a Vault dev server that only this test uses, and stops
// it and deletes its files when the test and its subtests end. It is for
// tests that Stop and Restart the server, which would break the tests that
// share the one of Start. It skips or fails the test as Start does.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := startServer()
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("vaulttest: %v", err)
		}
	})
	return s
}

// errNoBinary says that there is no Vault binary to run.
var errNoBinary = errors.New("no Vault binary")

func fail(t testing.TB, err error) {
	t.Helper()
	msg := "vaulttest: no Vault server for this test: " + err.Error()
	if errors.Is(err, errNoBinary) && os.Getenv("CI") == "" && os.Getenv(EnvRequireVault) == "" && os.Getenv(EnvVaultBin) == "" {
		t.Skip(msg + " (run scripts/vault.sh build; under CI or scripts/test.sh this fails instead of skipping)")
	}
	if errors.Is(err, errNoBinary) {
		msg += " (run scripts/vault.sh build)"
	}
	t.Fatal(msg)
}

// Client returns a client of the server, authenticated with the root token.
// It does not retry failed requests (the API's default is to retry twice,
// for seconds), so that tests of an outage fail fast, and it ignores the
// VAULT_ environment variables of the test process.
func (s *Server) Client(t testing.TB) *vaultapi.Client {
	t.Helper()
	c, err := s.newClient()
	if err != nil {
		t.Fatalf("vaulttest: client: %v", err)
	}
	return c
}

func (s *Server) newClient() (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	// DefaultConfig read the environment: undo what would point the client
	// elsewhere or slow it down.
	cfg.Address = s.Addr
	cfg.AgentAddress = ""
	cfg.SRVLookup = false
	cfg.Limiter = nil
	cfg.MaxRetries = 0
	cfg.Timeout = clientTimeout
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(s.Token)
	c.ClearNamespace()
	return c, nil
}

// EnableTransit enables the transit secrets engine at mount, or at a new
// mount "transit-<random>" when mount is "", and returns the mount. The
// mount is disabled when the test ends (if the server still runs).
func (s *Server) EnableTransit(t testing.TB, mount string) string {
	t.Helper()
	return s.enable(t, mount, "transit", &vaultapi.MountInput{Type: "transit"})
}

// EnableKV enables a KV version 2 secrets engine at mount, or at a new mount
// "kv-<random>" when mount is "", and returns the mount. The mount is
// disabled when the test ends (if the server still runs). A dev server has
// one at "secret" already, which all the tests that use Start share.
func (s *Server) EnableKV(t testing.TB, mount string) string {
	t.Helper()
	return s.enable(t, mount, "kv", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
}

func (s *Server) enable(t testing.TB, mount, prefix string, input *vaultapi.MountInput) string {
	t.Helper()
	if mount == "" {
		mount = prefix + "-" + randomHex(6)
	}
	c := s.Client(t)
	if err := c.Sys().MountWithContext(t.Context(), mount, input); err != nil {
		t.Fatalf("vaulttest: enable %s at %s: %v", input.Type, mount, err)
	}
	t.Cleanup(func() {
		if !s.Running() {
			return // a stopped server has no mounts to disable
		}
		// The test's own context is done by now: use a fresh one.
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		if err := c.Sys().UnmountWithContext(ctx, mount); err != nil {
			t.Logf("vaulttest: disable %s: %v", mount, err)
		}
	})
	return mount
}

// Running reports whether the server process runs (it may still be
// starting up, or be dying, but it has not been stopped).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.exited:
		return false
	default:
		return true
	}
}

// Stop kills the server, as an outage would: clients get "connection
// refused" from then on. Everything the server held is lost (a dev server
// keeps it in memory). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		// Kill cannot be refused; a process that outlives it is stuck in
		// the kernel, and waiting longer would not help.
	}
}

// Restart starts the server again after Stop (or stops it first if it
// runs), on the same address and with the same root token, and waits until
// it is unsealed. The new server is empty: mounts, transit keys and secrets
// of the old one are gone, and a test that needs them creates them again.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	return s.launchLocked()
}

// LogTail returns the last lines of the server's log, for a test that
// wants to show why the server misbehaved.
func (s *Server) LogTail() string {
	return logTail(filepath.Join(s.dir, "server.log"))
}

// startServer starts a new server in a temporary directory, retrying with
// another port if the one it picked was taken in the meantime (by a test
// binary running next to this one, say).
func startServer() (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "plinth-vaulttest-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	s := &Server{bin: bin, dir: dir, Token: "plinth-test-root-" + randomHex(16)}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Addr = "http://" + s.listen
		s.mu.Lock()
		lastErr = s.launchLocked()
		s.mu.Unlock()
		if lastErr == nil {
			liveMu.Lock()
			live[s] = true
			liveMu.Unlock()
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// launchLocked starts the server process on s.listen and waits until it is
// initialized and unsealed. s.mu is held.
func (s *Server) launchLocked() error {
	logPath := filepath.Join(s.dir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("server log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	fmt.Fprintf(logFile, "\n=== vaulttest: starting %s on %s at %s\n", s.bin, s.listen, time.Now().Format(time.RFC3339))

	cmd := exec.Command(s.bin, "server", "-dev",
		"-dev-root-token-id="+s.Token,
		"-dev-listen-address="+s.listen,
	)
	cmd.Dir = s.dir
	cmd.Env = isolatedEnv(s.dir)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.proc = p

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.waitReady(ctx, p); err != nil {
		s.stopLocked()
		return fmt.Errorf("vault dev server on %s: %w\nserver log:\n%s", s.listen, err, logTail(logPath))
	}
	return nil
}

// waitReady waits until sys/health says the server is initialized and
// unsealed, or the process exits, or ctx is done.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		ready, err := health(ctx, hc, s.Addr)
		if ready {
			return nil
		}
		last = err
		select {
		case <-p.exited:
			return fmt.Errorf("exited while starting: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not unsealed after %v: %v", startTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// health asks the server at addr whether it is initialized and unsealed.
func health(ctx context.Context, hc *http.Client, addr string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var h struct {
		Initialized bool `json:"initialized"`
		Sealed      bool `json:"sealed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return false, fmt.Errorf("sys/health: status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || !h.Initialized || h.Sealed {
		return false, fmt.Errorf("sys/health: status %d, initialized %t, sealed %t", resp.StatusCode, h.Initialized, h.Sealed)
	}
	return true, nil
}

// close stops the server and deletes its directory.
func (s *Server) close() error {
	s.Stop()
	liveMu.Lock()
	delete(live, s)
	liveMu.Unlock()
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("delete the Vault dev server's directory: %w", err)
	}
	return nil
}

// isolatedEnv returns the test process's environment without HOME and the
// VAULT_ variables, and with HOME set to home: the server neither reads
// the developer's settings nor writes a token file into their home.
func isolatedEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "HOME" || strings.HasPrefix(name, "VAULT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// findBinary returns the Vault binary named by EnvVaultBin, or else the one
// scripts/vault.sh builds into the repository's .cache/vault.
func findBinary() (string, error) {
	if p := os.Getenv(EnvVaultBin); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("%w: %s=%s is not an executable file", errNoBinary, EnvVaultBin, p)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %v", errNoBinary, err)
	}
	p := filepath.Join(root, ".cache", "vault", "vault")
	if !isExecutable(p) {
		return "", fmt.Errorf("%w at %s", errNoBinary, p)
	}
	return p, nil
}

// repoModule is the module path in the go.mod at the repository's root.
const repoModule = "plinth.dev/plinth"

// repoRoot returns the directory of the go.mod of module plinth.dev/plinth,
// the nearest one above the working directory (a test runs in its
// package's directory). Nested modules (sdk/go, tools/vault) are passed by.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if modulePath(filepath.Join(dir, "go.mod")) == repoModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("found no go.mod of module %s above the working directory", repoModule)
		}
		dir = parent
	}
}

// modulePath returns the module path that the go.mod at path declares, or
// "".
func modulePath(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather)
	return hex.EncodeToString(b)
}

// logTail returns the last lines of the server's log, enough to say why it
// failed without flooding the test log.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
