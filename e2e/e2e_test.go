// Package e2e drives the real plinth binary, against a throwaway PostgreSQL,
// through the generated Go client, plain HTTP JSON as curl sends it, and
// buf curl over server reflection.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"plinth.dev/plinth/internal/pgtest"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// binary is the plinth binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plinth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "plinth")
	build := exec.Command("go", "build", "-o", binary, "./cmd/plinth")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building plinth:", err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gatewayProcess is a running `plinth serve`.
type gatewayProcess struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	logs   *syncBuffer
	exited chan error
}

// startGateway runs `plinth serve` with env and waits until it listens.
func startGateway(t testing.TB, env []string) *gatewayProcess {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), append([]string{"PLINTH_LISTEN=127.0.0.1:0"}, env...)...)
	return startCommand(t, cmd)
}

// startCommand starts a prepared `plinth serve` command and waits until it
// listens.
func startCommand(t testing.TB, cmd *exec.Cmd) *gatewayProcess {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProcess{cmd: cmd, logs: &syncBuffer{}, exited: make(chan error, 1)}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			g.logs.Write(append(append([]byte{}, line...), '\n'))
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &entry) == nil && entry.Msg == "listening" {
				select {
				case listening <- entry.Addr:
				default:
				}
			}
		}
	}()
	go func() { g.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-g.exited
		}
	})
	select {
	case addr := <-listening:
		g.base = "http://" + addr
	case err := <-g.exited:
		t.Fatalf("plinth serve exited before listening (%v); its log:\n%s", err, g.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("plinth serve did not listen within 60s; its log:\n%s", g.logs)
	}
	return g
}

// stop sends SIGTERM and checks that the gateway exits cleanly.
func (g *gatewayProcess) stop(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.exited:
		if err != nil {
			t.Fatalf("plinth serve exited with %v after SIGTERM; its log:\n%s", err, g.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("plinth serve did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(g.logs.String(), "shut down cleanly") {
		t.Errorf("no clean shutdown in the log:\n%s", g.logs)
	}
}

// plinth runs a plinth command to completion and returns its output.
func runPlinth(t testing.TB, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plinth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestCustomersOnPostgres(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	env := []string{
		"PLINTH_POSTGRES_URL=" + dbURL,
		"PLINTH_BACKENDS_CUSTOMERS=postgres",
		"PLINTH_BACKENDS_ACCESS=postgres",
		"PLINTH_BACKENDS_AUDIT=postgres",
		"PLINTH_KEYRING_BACKEND=local",
		"PLINTH_KEYRING_KEY_FILE=" + filepath.Join(t.TempDir(), "keys.json"),
	}
	ctx := context.Background()

	// The gateway refuses to serve from a schema that lacks migrations.
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), append([]string{"PLINTH_LISTEN=127.0.0.1:0"}, env...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "plinth migrate up") {
		t.Fatalf("plinth serve on an unmigrated database: %v\n%s", err, out)
	}

	// Migrations are applied by `plinth migrate`, never by hand.
	if out := runPlinth(t, env, "migrate", "up"); !strings.Contains(out, "customers: 1 migration(s) applied") {
		t.Fatalf("migrate up said:\n%s", out)
	}
	if out := runPlinth(t, env, "migrate", "up"); !strings.Contains(out, "customers: 0 migration(s) applied") {
		t.Fatalf("a second migrate up should apply nothing; it said:\n%s", out)
	}
	if out := runPlinth(t, env, "migrate", "status"); !strings.Contains(out, "customers") {
		t.Fatalf("migrate status said:\n%s", out)
	}
	key := bootstrapKey(t, env)
	if out := runPlinth(t, env, "bootstrap"); !strings.Contains(out, "nothing was changed") || apiKeyPattern.MatchString(out) {
		t.Fatalf("a second bootstrap should change nothing and print no key:\n%s", out)
	}

	g := startGateway(t, env)
	client := customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())

	// The lifecycle through the generated client.
	signed, err := client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name:        "Ada Lovelace",
		Email:       "Ada@Example.com",
		Phone:       "+14155550100",
		DateOfBirth: "1815-12-10",
		Address:     &customersv1.Address{Line1: "12 St James's Square", City: "London", CountryCode: "GB"},
		TaxId:       "123-45-6789",
	}))
	if err != nil {
		t.Fatal(err)
	}
	ada := signed.Msg.GetCustomer()
	if ada.GetState() != customersv1.CustomerState_CUSTOMER_STATE_PENDING || ada.GetAddress().GetCity() != "London" {
		t.Fatalf("signed up %v", ada)
	}
	if signed.Header().Get("X-Request-Id") == "" {
		t.Error("no request id on the response")
	}
	found, err := client.FindCustomerByEmail(ctx, connect.NewRequest(&customersv1.FindCustomerByEmailRequest{Email: "ada@EXAMPLE.com"}))
	if err != nil || found.Msg.GetCustomer().GetId() != ada.GetId() {
		t.Fatalf("FindCustomerByEmail in another case: %v, %v", found, err)
	}
	_, err = client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Imposter", Email: "ADA@example.COM"}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("duplicate email regardless of case: got %v, want already_exists", err)
	}
	for _, step := range []func() error{
		func() error {
			_, err := client.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: ada.GetId()}))
			return err
		},
		func() error {
			_, err := client.SuspendCustomer(ctx, connect.NewRequest(&customersv1.SuspendCustomerRequest{CustomerId: ada.GetId(), Reason: "chargebacks"}))
			return err
		},
		func() error {
			_, err := client.ReinstateCustomer(ctx, connect.NewRequest(&customersv1.ReinstateCustomerRequest{CustomerId: ada.GetId()}))
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	updated, err := client.UpdateCustomerProfile(ctx, connect.NewRequest(&customersv1.UpdateCustomerProfileRequest{
		CustomerId: ada.GetId(), Phone: new("+442071234567"),
	}))
	if err != nil || updated.Msg.GetCustomer().GetPhone() != "+442071234567" || updated.Msg.GetCustomer().GetTaxId() != "123-45-6789" {
		t.Fatalf("UpdateCustomerProfile: %v, %v", updated, err)
	}
	if _, err := client.ChangeCustomerEmail(ctx, connect.NewRequest(&customersv1.ChangeCustomerEmailRequest{CustomerId: ada.GetId(), NewEmail: "countess@example.com"})); err != nil {
		t.Fatal(err)
	}

	// An illegal transition: FailedPrecondition, naming both states.
	_, err = client.ApproveCustomer(ctx, connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: ada.GetId()}))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeFailedPrecondition ||
		!strings.Contains(cerr.Message(), "APPROVED") {
		t.Fatalf("approving an approved customer: got %v, want failed_precondition naming APPROVED", err)
	}
	var info *errdetails.ErrorInfo
	for _, d := range cerr.Details() {
		if v, err := d.Value(); err == nil {
			if ei, ok := v.(*errdetails.ErrorInfo); ok {
				info = ei
			}
		}
	}
	if info.GetReason() != "ILLEGAL_TRANSITION" || info.GetMetadata()["from"] != "CUSTOMER_STATE_APPROVED" || info.GetMetadata()["to"] != "CUSTOMER_STATE_APPROVED" {
		t.Errorf("error details: %v", info)
	}

	// A request that fails validation: every violation in the details.
	_, err = client.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "", Email: "not-an-email"}))
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument {
		t.Fatalf("invalid sign-up: got %v, want invalid_argument", err)
	}
	fields := violatedFields(t, cerr)
	if !fields["name"] || !fields["email"] {
		t.Errorf("violations name %v, want name and email", fields)
	}

	// Plain HTTP JSON, as curl sends it.
	status, body := postJSONAs(t, key, g.base+"/plinth.customers.v1.CustomerService/SignUpCustomer",
		`{"name": "Grace Hopper", "email": "grace@example.com", "address": {"line1": "1 Navy Way", "city": "Arlington", "countryCode": "US"}}`)
	if status != http.StatusOK || !strings.Contains(body, `"state":"CUSTOMER_STATE_PENDING"`) {
		t.Fatalf("JSON sign-up: %d %s", status, body)
	}
	var graceRes struct {
		Customer struct{ ID string }
	}
	if err := json.Unmarshal([]byte(body), &graceRes); err != nil || graceRes.Customer.ID == "" {
		t.Fatalf("JSON sign-up body %s: %v", body, err)
	}
	status, body = postJSONAs(t, key, g.base+"/plinth.customers.v1.CustomerService/SignUpCustomer", `{"name": "", "email": "nope"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, `"code":"invalid_argument"`) ||
		!strings.Contains(body, "buf.validate.Violations") {
		t.Errorf("invalid JSON sign-up: %d %s", status, body)
	}
	status, body = postJSONAs(t, key, g.base+"/plinth.customers.v1.CustomerService/RejectCustomer",
		`{"customerId": "`+graceRes.Customer.ID+`", "reason": "documents expired"}`)
	if status != http.StatusOK || !strings.Contains(body, "CUSTOMER_STATE_REJECTED") {
		t.Fatalf("JSON reject: %d %s", status, body)
	}
	status, body = postJSONAs(t, key, g.base+"/plinth.customers.v1.CustomerService/SuspendCustomer",
		`{"customerId": "`+graceRes.Customer.ID+`", "reason": "again"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, `"code":"failed_precondition"`) ||
		!strings.Contains(body, "REJECTED") || !strings.Contains(body, "SUSPENDED") {
		t.Errorf("JSON illegal transition: %d %s", status, body)
	}

	// Listing pages through both, filtered by state.
	list, err := client.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 1}))
	if err != nil || len(list.Msg.GetCustomers()) != 1 || list.Msg.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", list, err)
	}
	next, err := client.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 1, PageToken: list.Msg.GetNextPageToken()}))
	if err != nil || len(next.Msg.GetCustomers()) != 1 || next.Msg.GetCustomers()[0].GetId() == list.Msg.GetCustomers()[0].GetId() {
		t.Fatalf("second page: %v, %v", next, err)
	}
	rejected, err := client.ListCustomers(ctx, connect.NewRequest(&customersv1.ListCustomersRequest{State: customersv1.CustomerState_CUSTOMER_STATE_REJECTED}))
	if err != nil || len(rejected.Msg.GetCustomers()) != 1 || rejected.Msg.GetCustomers()[0].GetId() != graceRes.Customer.ID {
		t.Fatalf("rejected customers: %v, %v", rejected, err)
	}

	// Readiness with PostgreSQL behind it.
	if res, err := http.Get(g.base + "/readyz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("readyz: %v, %v", res, err)
	}

	// Reflection: buf curl and grpcurl list and call capabilities.
	reflectionClients(t, g.base, key, ada.GetId())

	// Without a key, nothing.
	if status, body := postJSONAs(t, "", g.base+"/plinth.customers.v1.CustomerService/ListCustomers", `{}`); status != http.StatusUnauthorized {
		t.Errorf("a call without a key: %d %s", status, body)
	}

	// No PII in the clear in any column of any table: not in the customers'
	// tables, not in the idempotency records that keep their answers.
	noPlaintextPII(t, dbURL, "Ada Lovelace", "Ada@Example.com", "ada@example.com", "countess@example.com",
		"123-45-6789", "+14155550100", "+442071234567", "1815-12-10", "St James", "Grace Hopper", "grace@example.com", "Navy Way")

	// The audit chain holds every call; editing one record in the database
	// is detected, and VerifyAuditChain says where.
	auditor := auditv1connect.NewAuditServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key))
	if v, err := auditor.VerifyAuditChain(ctx, connect.NewRequest(&auditv1.VerifyAuditChainRequest{})); err != nil || !v.Msg.GetOk() || v.Msg.GetRecordsChecked() < 10 {
		t.Fatalf("VerifyAuditChain before tampering: %v, %v", v, err)
	}
	tamper, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	// As an intruder with the table owner's rights would: past the
	// append-only trigger.
	if _, err := tamper.Exec(ctx, `ALTER TABLE audit.records DISABLE TRIGGER records_append_only`); err != nil {
		t.Fatal(err)
	}
	if _, err := tamper.Exec(ctx, `UPDATE audit.records SET code = code || '_forged' WHERE sequence = 5`); err != nil {
		t.Fatal(err)
	}
	tamper.Close(ctx)
	v, err := auditor.VerifyAuditChain(ctx, connect.NewRequest(&auditv1.VerifyAuditChainRequest{}))
	if err != nil || v.Msg.GetOk() || v.Msg.GetFirstBrokenSequence() != 5 {
		t.Errorf("VerifyAuditChain after editing record 5: %v, %v; want it broken at 5", v, err)
	}

	// Nothing sensitive in the gateway's log.
	for _, secret := range []string{"Ada Lovelace", "Ada@Example.com", "123-45-6789", "+14155550100", "Grace Hopper", "grace@example.com"} {
		if strings.Contains(g.logs.String(), secret) {
			t.Errorf("the gateway logged a sensitive value %q", secret)
		}
	}

	// A keyed sign-up, to retry after the restart.
	keyed := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Mary Jackson", Email: "mary@example.com"})
	keyed.Header().Set("Idempotency-Key", "e2e-restart-1")
	first, err := client.SignUpCustomer(ctx, keyed)
	if err != nil {
		t.Fatal(err)
	}

	// A graceful stop, and the data is still there after a restart.
	g.stop(t)
	g = startGateway(t, env)
	client = customersv1connect.NewCustomerServiceClient(http.DefaultClient, g.base, plinth.WithAPIKey(key), plinth.WithIdempotencyKeys())
	got, err := client.GetCustomer(ctx, connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ada.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	// The idempotency record survived the restart with the customer.
	retried, err := client.SignUpCustomer(ctx, keyed)
	if err != nil || retried.Msg.GetCustomer().GetId() != first.Msg.GetCustomer().GetId() || retried.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("a retry after the restart: %v, %v; want the first answer, replayed", retried, err)
	}
	if c := got.Msg.GetCustomer(); c.GetEmail() != "countess@example.com" || c.GetPhone() != "+442071234567" ||
		c.GetState() != customersv1.CustomerState_CUSTOMER_STATE_APPROVED || c.GetDateOfBirth() != "1815-12-10" {
		t.Errorf("after a restart: %v", c)
	}
	g.stop(t)
}

func TestStartupRefusesUnknownBackend(t *testing.T) {
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "PLINTH_LISTEN=127.0.0.1:0", "PLINTH_BACKENDS_CUSTOMERS=mongo")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("plinth serve started with an unknown backend:\n%s", out)
	}
	for _, want := range []string{"mongo", "memory", "postgres"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not mention %q:\n%s", want, out)
		}
	}
}

func violatedFields(t *testing.T, cerr *connect.Error) map[string]bool {
	t.Helper()
	fields := map[string]bool{}
	for _, d := range cerr.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatal(err)
		}
		if vs, ok := v.(*validate.Violations); ok {
			for _, violation := range vs.GetViolations() {
				for _, el := range violation.GetField().GetElements() {
					fields[el.GetFieldName()] = true
				}
			}
		}
	}
	return fields
}

// apiKeyPattern matches an API key as `plinth bootstrap` prints it.
var apiKeyPattern = regexp.MustCompile(`plk_[0-9a-f]{8}_[0-9a-f]{64}`)

// bootstrapKey runs `plinth bootstrap` and returns the admin key it prints.
func bootstrapKey(t testing.TB, env []string) string {
	t.Helper()
	out := runPlinth(t, env, "bootstrap")
	key := apiKeyPattern.FindString(out)
	if key == "" {
		t.Fatalf("plinth bootstrap printed no key:\n%s", out)
	}
	return key
}

// postJSONAs posts body as curl would, with key as the bearer API key
// (none if empty) and a fresh Idempotency-Key.
func postJSONAs(t *testing.T, key, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", plinth.NewIdempotencyKey())
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// tool returns the path of a tool installed by scripts/install-tools.sh, or
// skips (fails under the test command) when it is missing.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs("../.bin/" + name)
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		if os.Getenv("PLINTH_TEST_REQUIRE_POSTGRES") != "" || os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed in .bin/: run scripts/install-tools.sh", name)
		}
		t.Skipf("%s is not installed in .bin/: run scripts/install-tools.sh", name)
	}
	return path
}

// reflectionClients lists the capabilities and calls one with buf curl and
// with grpcurl, which know nothing of Plinth but what server reflection
// tells them.
func reflectionClients(t *testing.T, base, key, customerID string) {
	t.Helper()
	buf := tool(t, "buf")
	out, err := exec.Command(buf, "curl", "--http2-prior-knowledge", "--list-methods", base).CombinedOutput()
	if err != nil {
		t.Fatalf("buf curl --list-methods: %v\n%s", err, out)
	}
	for _, want := range []string{"plinth.customers.v1.CustomerService/SignUpCustomer", "plinth.customers.v1.CustomerService/CloseCustomer"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("buf curl --list-methods lacks %s:\n%s", want, out)
		}
	}
	out, err = exec.Command(buf, "curl", "--http2-prior-knowledge", "--protocol", "grpc",
		"-H", "Authorization: Bearer "+key,
		"--data", `{"customer_id": "`+customerID+`"}`,
		base+"/plinth.customers.v1.CustomerService/GetCustomer").CombinedOutput()
	if err != nil || !strings.Contains(string(out), customerID) {
		t.Errorf("buf curl GetCustomer over gRPC: %v\n%s", err, out)
	}

	grpcurl := tool(t, "grpcurl")
	host := strings.TrimPrefix(base, "http://")
	out, err = exec.Command(grpcurl, "-plaintext", host, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "plinth.customers.v1.CustomerService") {
		t.Errorf("grpcurl list: %v\n%s", err, out)
	}
	out, err = exec.Command(grpcurl, "-plaintext", "-H", "Authorization: Bearer "+key, "-d", `{"customer_id": "`+customerID+`"}`,
		host, "plinth.customers.v1.CustomerService/GetCustomer").CombinedOutput()
	if err != nil || !strings.Contains(string(out), customerID) {
		t.Errorf("grpcurl GetCustomer: %v\n%s", err, out)
	}
	out, err = exec.Command(grpcurl, "-plaintext", "-H", "Authorization: Bearer "+key, "-d", `{"customer_id": "nope"}`,
		host, "plinth.customers.v1.CustomerService/GetCustomer").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "InvalidArgument") {
		t.Errorf("grpcurl GetCustomer with a bad id should fail validation: %v\n%s", err, out)
	}
}

// noPlaintextPII reads every row of every table of Plinth's schemas as text
// (bytea as hex) and fails if any holds one of values, as text or as hex.
func noPlaintextPII(t *testing.T, dbURL string, values ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ('customers', 'ledger', 'access', 'idempotency', 'audit') AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var read int
	for _, table := range tables {
		texts, err := conn.Query(ctx, `SELECT t::text FROM `+table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(texts, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range all {
			read++
			lower := strings.ToLower(row)
			for _, v := range values {
				if strings.Contains(lower, strings.ToLower(v)) || strings.Contains(lower, hex.EncodeToString([]byte(v))) {
					t.Errorf("%s holds %q in the clear", table, v)
				}
			}
		}
	}
	if read == 0 {
		t.Fatal("read no rows: the check proved nothing")
	}
	t.Logf("no PII in the clear in %d rows of %d tables", read, len(tables))
}

// `plinth serve --cpuprofile FILE` writes a CPU profile of the whole run,
// ended by a clean stop: a gzipped pprof protobuf.
func TestServeWritesACPUProfile(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	cmd := exec.Command(binary, "serve", "--cpuprofile", profile)
	cmd.Env = append(os.Environ(), "PLINTH_LISTEN=127.0.0.1:0")
	g := startCommand(t, cmd)
	if res, err := http.Get(g.base + "/healthz"); err == nil {
		res.Body.Close()
	}
	g.stop(t)
	data, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Fatalf("the profile is %d bytes and not gzipped: not what go tool pprof reads", len(data))
	}
}
