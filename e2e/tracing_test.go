package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// TestTracingToStdout turns tracing on with the stdout exporter and checks
// that a call leaves a span named after its capability, flushed at
// shutdown, with no sensitive value in it.
func TestTracingToStdout(t *testing.T) {
	stdout := &syncBuffer{}
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "PLINTH_LISTEN=127.0.0.1:0", "PLINTH_TRACING_EXPORTER=stdout")
	cmd.Stdout = stdout
	g := startCommand(t, cmd)

	// Principals live in memory: serve bootstrapped an admin and printed
	// its key on stdout, before its "listening" line (the copy of stdout
	// into the buffer may lag a little).
	var key string
	for deadline := time.Now().Add(10 * time.Second); key == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		key = apiKeyPattern.FindString(stdout.String())
	}
	if key == "" {
		t.Fatalf("plinth serve printed no admin key:\n%s", stdout)
	}
	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	_, err := client.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name: "Katherine Johnson", Email: "katherine@example.com",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, g.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	spans := stdout.String()
	if !strings.Contains(spans, `"Name":"plinth.customers.v1.CustomerService/SignUpCustomer"`) {
		t.Fatalf("no span for the call on stdout:\n%s", spans)
	}
	for _, secret := range []string{"Katherine", "katherine@example.com"} {
		if strings.Contains(spans, secret) {
			t.Errorf("a span holds the sensitive value %q", secret)
		}
	}
}
