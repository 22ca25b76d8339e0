package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"

	_ "plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/idempotency"
	"plinth.dev/plinth/internal/ids"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

const (
	signUpProcedure = customersv1connect.CustomerServiceSignUpCustomerProcedure
	getProcedure    = customersv1connect.CustomerServiceGetCustomerProcedure
	customerService = "plinth.customers.v1.CustomerService"
)

// generatedRequestID is what the gateway's own request ids look like.
var generatedRequestID = regexp.MustCompile(`^req_[0-9A-Z]{26}$`)

// client returns a customers client over HTTP/1.1 (Connect binary unless
// opts say otherwise).
func (ts *testServer) client(opts ...connect.ClientOption) customersv1connect.CustomerServiceClient {
	return customersv1connect.NewCustomerServiceClient(ts.h1, ts.URL, append([]connect.ClientOption{plinth.WithAPIKey(ts.key), plinth.WithIdempotencyKeys()}, opts...)...)
}

// grpcClient returns a customers client speaking gRPC over h2c.
func (ts *testServer) grpcClient() customersv1connect.CustomerServiceClient {
	return customersv1connect.NewCustomerServiceClient(ts.h2c, ts.URL, connect.WithGRPC(), plinth.WithAPIKey(ts.key), plinth.WithIdempotencyKeys())
}

func signUp(t *testing.T, c customersv1connect.CustomerServiceClient, name, email string) *customersv1.Customer {
	t.Helper()
	res, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: name, Email: email}))
	if err != nil {
		t.Fatalf("SignUpCustomer(%s): %v", email, err)
	}
	return res.Msg.GetCustomer()
}

// countCustomers counts the customers stored, through the gateway.
func countCustomers(t *testing.T, c customersv1connect.CustomerServiceClient) int {
	t.Helper()
	res, err := c.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 200}))
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	return len(res.Msg.GetCustomers())
}

// connectError returns err as a *connect.Error with the code want, or fails.
func connectError(t *testing.T, err error, want connect.Code) *connect.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v", want)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *connect.Error", err, err)
	}
	if ce.Code() != want {
		t.Fatalf("code %v (%q), want %v", ce.Code(), ce.Message(), want)
	}
	return ce
}

// post sends body to path as curl would and returns the response with its
// body read.
func (ts *testServer) post(t *testing.T, path, contentType, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	// As a careful curl user would: a fresh key for each call. Tests about
	// keys pass their own in header.
	req.Header.Set(idempotency.Header, plinth.NewIdempotencyKey())
	req.Header.Set("Authorization", "Bearer "+ts.key)
	for k, vs := range header {
		req.Header[k] = vs
	}
	return ts.do(t, req)
}

func (ts *testServer) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ts.do(t, req)
}

func (ts *testServer) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := ts.h1.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return res, body
}

// connectErrorBody is the JSON body of a Connect protocol error.
type connectErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string          `json:"type"`
		Value string          `json:"value"`
		Debug json.RawMessage `json:"debug"`
	} `json:"details"`
}

// TestProtocols proves that one capability answers the same over every
// protocol the gateway promises: Connect JSON and binary, gRPC over h2c,
// gRPC-Web, and plain JSON over HTTP/1.1 as curl sends it.
func TestProtocols(t *testing.T) {
	t.Parallel()
	ts := startServer(t)

	cases := []struct {
		name     string
		client   customersv1connect.CustomerServiceClient
		protocol string // as the access log names it
	}{
		{"connect-json", ts.client(connect.WithProtoJSON()), connect.ProtocolConnect},
		{"connect-binary", ts.client(), connect.ProtocolConnect},
		{"grpc-h2c", ts.grpcClient(), connect.ProtocolGRPC},
		{"grpc-web", ts.client(connect.WithGRPCWeb()), connect.ProtocolGRPCWeb},
		{"grpc-web-json", ts.client(connect.WithGRPCWeb(), connect.WithProtoJSON()), connect.ProtocolGRPCWeb},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			email := tc.name + "@example.com"
			res, err := tc.client.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
				Name: "Ada " + tc.name, Email: email,
			}))
			if err != nil {
				t.Fatalf("SignUpCustomer: %v", err)
			}
			created := res.Msg.GetCustomer()
			if !strings.HasPrefix(created.GetId(), "cus_") || created.GetState() != customersv1.CustomerState_CUSTOMER_STATE_PENDING ||
				created.GetEmail() != email {
				t.Errorf("signed up %v, want a pending customer with id cus_... and email %s", created, email)
			}
			requestID := res.Header().Get(gateway.RequestIDHeader)
			if !generatedRequestID.MatchString(requestID) {
				t.Errorf("response header %s = %q, want a generated request id", gateway.RequestIDHeader, requestID)
			}

			got, err := tc.client.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: created.GetId()}))
			if err != nil {
				t.Fatalf("GetCustomer: %v", err)
			}
			if got.Msg.GetCustomer().GetName() != "Ada "+tc.name || got.Msg.GetCustomer().GetId() != created.GetId() {
				t.Errorf("GetCustomer returned %v, want the customer just signed up", got.Msg.GetCustomer())
			}

			line := ts.accessLog(t, requestID)
			if line == nil {
				t.Fatalf("no access-log line for request id %s", requestID)
			}
			if line.str("protocol") != tc.protocol || line.str("capability") != signUpProcedure || line.str("code") != "ok" {
				t.Errorf("access log %v, want protocol %s, capability %s, code ok", line, tc.protocol, signUpProcedure)
			}
		})
	}

	t.Run("curl-json", func(t *testing.T) {
		t.Parallel()
		res, body := ts.post(t, signUpProcedure, "application/json",
			`{"name": "Grace Hopper", "email": "grace@example.com", "dateOfBirth": "1906-12-09"}`, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s: %s", signUpProcedure, res.Status, body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		if !generatedRequestID.MatchString(res.Header.Get(gateway.RequestIDHeader)) {
			t.Errorf("no generated request id in %v", res.Header)
		}
		var signedUp struct {
			Customer struct {
				ID          string `json:"id"`
				State       string `json:"state"`
				Name        string `json:"name"`
				DateOfBirth string `json:"dateOfBirth"`
			} `json:"customer"`
		}
		if err := json.Unmarshal(body, &signedUp); err != nil {
			t.Fatalf("response is not JSON: %v: %s", err, body)
		}
		c := signedUp.Customer
		if !strings.HasPrefix(c.ID, "cus_") || c.State != "CUSTOMER_STATE_PENDING" || c.Name != "Grace Hopper" || c.DateOfBirth != "1906-12-09" {
			t.Errorf("response %s, want Grace Hopper, pending, with an id", body)
		}

		// A side-effect-free capability also answers a Connect GET, which a
		// browser or CDN can cache.
		msg := url.QueryEscape(`{"customerId":"` + c.ID + `"}`)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+getProcedure+"?encoding=json&message="+msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ts.key)
		res, body = ts.do(t, req)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"Grace Hopper"`) {
			t.Errorf("GET %s: %s: %s", getProcedure, res.Status, body)
		}
	})
}

// TestValidation proves that protovalidate refuses a bad request with
// InvalidArgument and every violation as a detail, before it reaches the
// store.
func TestValidation(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	c := ts.client()

	_, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "", Email: "not-an-email"}))
	ce := connectError(t, err, connect.CodeInvalidArgument)
	var fields []string
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatalf("detail %s: %v", d.Type(), err)
		}
		violations, ok := v.(*validate.Violations)
		if !ok {
			continue
		}
		for _, violation := range violations.GetViolations() {
			fields = append(fields, protovalidate.FieldPathString(violation.GetField()))
		}
	}
	slices.Sort(fields)
	if !slices.Equal(fields, []string{"email", "name"}) {
		t.Errorf("violations name fields %v, want [email name]; error: %v", fields, ce)
	}
	if !strings.Contains(ce.Message(), "name") || !strings.Contains(ce.Message(), "email") {
		t.Errorf("message %q should name both fields", ce.Message())
	}
	if n := countCustomers(t, c); n != 0 {
		t.Errorf("%d customers stored after an invalid sign-up, want 0", n)
	}

	// The same over plain JSON, as curl sees it.
	res, body := ts.post(t, signUpProcedure, "application/json", `{"name": "", "email": "not-an-email"}`, nil)
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status %s, want 400 Bad Request", res.Status)
	}
	var eb connectErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if eb.Code != "invalid_argument" {
		t.Errorf("error code %q, want invalid_argument: %s", eb.Code, body)
	}
	if len(eb.Details) != 1 || eb.Details[0].Type != "buf.validate.Violations" || eb.Details[0].Value == "" {
		t.Errorf("details %+v, want one buf.validate.Violations: %s", eb.Details, body)
	}
	if n := countCustomers(t, c); n != 0 {
		t.Errorf("%d customers stored after invalid sign-ups, want 0", n)
	}
}

// errorInfo returns the google.rpc.ErrorInfo detail of an error, or nil.
func errorInfo(t *testing.T, ce *connect.Error) *errdetails.ErrorInfo {
	t.Helper()
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatalf("detail %s: %v", d.Type(), err)
		}
		if info, ok := v.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// TestDomainErrors proves that the domain's typed errors reach callers as the
// Connect code of their kind, with their message and machine-readable
// details.
func TestDomainErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	c := ts.client()

	t.Run("illegal transition", func(t *testing.T) {
		t.Parallel()
		id := signUp(t, c, "Twice Approved", "twice@example.com").GetId()
		approve := connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: id})
		if _, err := c.ApproveCustomer(t.Context(), approve); err != nil {
			t.Fatalf("first ApproveCustomer: %v", err)
		}
		_, err := c.ApproveCustomer(t.Context(), connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: id}))
		ce := connectError(t, err, connect.CodeFailedPrecondition)
		if !strings.Contains(ce.Message(), "from APPROVED to APPROVED") || !strings.Contains(ce.Message(), "only from PENDING") {
			t.Errorf("message %q should name the state the customer is in and the ones allowed", ce.Message())
		}
		info := errorInfo(t, ce)
		if info == nil {
			t.Fatalf("no google.rpc.ErrorInfo in %v", ce.Details())
		}
		if info.GetReason() != "ILLEGAL_TRANSITION" || info.GetDomain() != "plinth.dev" ||
			info.GetMetadata()["from"] != "CUSTOMER_STATE_APPROVED" || info.GetMetadata()["to"] != "CUSTOMER_STATE_APPROVED" ||
			info.GetMetadata()["customer_id"] != id {
			t.Errorf("ErrorInfo %v, want ILLEGAL_TRANSITION from and to APPROVED for %s", info, id)
		}

		// Two different states, so that the message is seen to name both.
		_, err = c.RejectCustomer(t.Context(), connect.NewRequest(&customersv1.RejectCustomerRequest{CustomerId: id, Reason: "too late"}))
		ce = connectError(t, err, connect.CodeFailedPrecondition)
		if !strings.Contains(ce.Message(), "from APPROVED to REJECTED") {
			t.Errorf("message %q should name APPROVED and REJECTED", ce.Message())
		}
		if info := errorInfo(t, ce); info.GetMetadata()["from"] != "CUSTOMER_STATE_APPROVED" || info.GetMetadata()["to"] != "CUSTOMER_STATE_REJECTED" {
			t.Errorf("ErrorInfo %v, want from APPROVED to REJECTED", info)
		}
	})

	t.Run("unknown customer", func(t *testing.T) {
		t.Parallel()
		id := ids.New("cus")
		_, err := c.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: id}))
		ce := connectError(t, err, connect.CodeNotFound)
		if !strings.Contains(ce.Message(), id) {
			t.Errorf("message %q should name the id %s", ce.Message(), id)
		}
		_, err = c.ApproveCustomer(t.Context(), connect.NewRequest(&customersv1.ApproveCustomerRequest{CustomerId: id}))
		connectError(t, err, connect.CodeNotFound)
	})

	t.Run("duplicate email", func(t *testing.T) {
		t.Parallel()
		signUp(t, c, "First Owner", "taken@example.com")
		_, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name: "Second Owner", Email: "TAKEN@example.com",
		}))
		ce := connectError(t, err, connect.CodeAlreadyExists)
		if strings.Contains(strings.ToLower(ce.Message()), "taken@example.com") {
			t.Errorf("message %q repeats the email", ce.Message())
		}
		if info := errorInfo(t, ce); info.GetReason() != "EMAIL_TAKEN" {
			t.Errorf("ErrorInfo %v, want reason EMAIL_TAKEN", info)
		}
	})
}

// TestRequestID proves that every response carries a request id, that a
// caller's well-formed id is kept and a malformed one replaced, and that the
// access log files the call under the same id.
func TestRequestID(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	c := ts.client()

	withID := func(id string) http.Header {
		h := http.Header{}
		if id != "" {
			h.Set(gateway.RequestIDHeader, id)
		}
		return h
	}
	signUpWithID := func(t *testing.T, sent, email string) (string, error) {
		req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Request Id", Email: email})
		for k, v := range withID(sent) {
			req.Header()[k] = v
		}
		res, err := c.SignUpCustomer(t.Context(), req)
		if err != nil {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("not a connect error: %v", err)
			}
			return ce.Meta().Get(gateway.RequestIDHeader), err
		}
		return res.Header().Get(gateway.RequestIDHeader), nil
	}
	checkAccessLog := func(t *testing.T, requestID, code string) {
		t.Helper()
		line := ts.accessLog(t, requestID)
		if line == nil {
			t.Fatalf("no access-log line with request_id %q", requestID)
		}
		if line.str("capability") != signUpProcedure || line.str("code") != code {
			t.Errorf("access log %v, want capability %s and code %s", line, signUpProcedure, code)
		}
	}

	t.Run("generated", func(t *testing.T) {
		t.Parallel()
		got, err := signUpWithID(t, "", "generated@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if !generatedRequestID.MatchString(got) {
			t.Errorf("request id %q, want a generated one", got)
		}
		checkAccessLog(t, got, "ok")
	})
	t.Run("caller's kept", func(t *testing.T) {
		t.Parallel()
		const sent = "client-trace.42_ABC"
		got, err := signUpWithID(t, sent, "kept@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if got != sent {
			t.Errorf("request id %q, want the caller's %q", got, sent)
		}
		checkAccessLog(t, sent, "ok")
	})
	t.Run("caller's kept on error", func(t *testing.T) {
		t.Parallel()
		const sent = "client-trace-err-7"
		got, err := signUpWithID(t, sent, "not an email")
		connectError(t, err, connect.CodeInvalidArgument)
		if got != sent {
			t.Errorf("request id %q on an error, want the caller's %q", got, sent)
		}
		checkAccessLog(t, sent, "invalid_argument")
	})
	for name, sent := range map[string]string{
		"too long":    strings.Repeat("a", 200),
		"with spaces": "has spaces in it",
		"with a tab":  "abc\tdef",
	} {
		t.Run("malformed "+name+" replaced", func(t *testing.T) {
			t.Parallel()
			got, err := signUpWithID(t, sent, strings.ReplaceAll(name, " ", "-")+"@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if !generatedRequestID.MatchString(got) {
				t.Errorf("request id %q for a malformed %q, want a generated one", got, sent)
			}
			checkAccessLog(t, got, "ok")
			if strings.Contains(ts.logs.String(), sent) {
				t.Errorf("the log repeats the malformed request id %q", sent)
			}
		})
	}
	t.Run("operator endpoints", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/no/such/path"} {
			res, _ := ts.get(t, path)
			if !generatedRequestID.MatchString(res.Header.Get(gateway.RequestIDHeader)) {
				t.Errorf("GET %s (%s): no request id in %v", path, res.Status, res.Header)
			}
		}
		res, _ := ts.post(t, signUpProcedure, "application/json", `{"name":""}`, withID("curl-1"))
		if got := res.Header.Get(gateway.RequestIDHeader); got != "curl-1" {
			t.Errorf("plain JSON error: request id %q, want curl-1", got)
		}
	})
}

// TestLogsHoldNoSensitiveValues proves that even at debug level, where each
// request is logged, no value the contract classifies reaches the log, on
// success or on error.
func TestLogsHoldNoSensitiveValues(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLogLevel(slog.LevelDebug))
	c := ts.client()

	const (
		name    = "Zebulon Quixote-Farnsworth"
		email   = "zebulon.q.farnsworth@example.org"
		phone   = "+14155550987"
		taxID   = "TAXID-987-65-4329"
		dob     = "1971-03-14"
		street  = "742 Evergreen Terrace Zq"
		email2  = "quixote.unknown@example.org"
		badMail = "zebulon-at-nowhere"
		taxID2  = "TAXID-555-12-9876"
	)
	res, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name: name, Email: email, Phone: phone, TaxId: taxID, DateOfBirth: dob,
		Address: &customersv1.Address{Line1: street, City: "Springfield", CountryCode: "US"},
	}))
	if err != nil {
		t.Fatalf("SignUpCustomer: %v", err)
	}
	id := res.Msg.GetCustomer().GetId()

	// Errors, each with sensitive values in its request.
	_, err = c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: name, Email: strings.ToUpper(email), TaxId: taxID}))
	connectError(t, err, connect.CodeAlreadyExists)
	_, err = c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: name, Email: badMail, Phone: "12345"}))
	connectError(t, err, connect.CodeInvalidArgument)
	_, err = c.FindCustomerByEmail(t.Context(), connect.NewRequest(&customersv1.FindCustomerByEmailRequest{Email: email2}))
	connectError(t, err, connect.CodeNotFound)
	_, err = c.UpdateCustomerProfile(t.Context(), connect.NewRequest(&customersv1.UpdateCustomerProfileRequest{CustomerId: ids.New("cus"), TaxId: new(taxID2)}))
	connectError(t, err, connect.CodeNotFound)
	_, err = c.UpdateCustomerProfile(t.Context(), connect.NewRequest(&customersv1.UpdateCustomerProfileRequest{CustomerId: id, DateOfBirth: new("2999-01-01")}))
	connectError(t, err, connect.CodeInvalidArgument)
	if _, err := c.FindCustomerByEmail(t.Context(), connect.NewRequest(&customersv1.FindCustomerByEmailRequest{Email: email})); err != nil {
		t.Fatalf("FindCustomerByEmail: %v", err)
	}

	logs := ts.logs.String()
	for _, v := range []string{name, "Zebulon", "Farnsworth", email, "farnsworth@", phone, "4155550987", taxID, "65-4329", dob, street, "Evergreen",
		email2, badMail, taxID2, "2999-01-01"} {
		if strings.Contains(strings.ToLower(logs), strings.ToLower(v)) {
			t.Errorf("the log holds the sensitive value %q", v)
		}
	}
	if !strings.Contains(logs, "[PII]") {
		t.Errorf("the debug log has no [PII] placeholder; was the request logged at all?")
	}
	var debugLines int
	for _, r := range ts.records(t) {
		if r.str("msg") == "request" && r.str("level") == "DEBUG" {
			debugLines++
		}
	}
	if debugLines < 7 {
		t.Errorf("%d debug request lines, want one per call (7)", debugLines)
	}
}

// TestPanicBecomesInternal proves that a panic in a capability reaches the
// caller as Internal with only the request id, reaches the log in full, and
// leaves the server serving.
func TestPanicBecomesInternal(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withBackend("testpanic"))
	c := ts.client()

	_, err := c.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ids.New("cus")}))
	ce := connectError(t, err, connect.CodeInternal)
	requestID := ce.Meta().Get(gateway.RequestIDHeader)
	if requestID == "" {
		t.Fatalf("no request id on the Internal error: %v", ce.Meta())
	}
	if !strings.Contains(ce.Message(), requestID) {
		t.Errorf("message %q should hold the request id %s", ce.Message(), requestID)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "password") || len(ce.Details()) != 0 {
		t.Errorf("the caller sees the panic: %v (details %v)", err, ce.Details())
	}

	var panicked bool
	for _, r := range ts.records(t) {
		if r.str("msg") == "capability panicked" && r.str("request_id") == requestID &&
			r.str("panic") == panicSecret && strings.Contains(r.str("stack"), "panickingStore") {
			panicked = true
		}
	}
	if !panicked {
		t.Errorf("no log line with the panic, its stack and request id %s", requestID)
	}
	if line := ts.accessLog(t, requestID); line.str("code") != "internal" || line.str("level") != "ERROR" {
		t.Errorf("access log %v, want code internal at level ERROR", line)
	}

	// The server goes on serving.
	signUp(t, c, "After Panic", "after.panic@example.com")
	if n := countCustomers(t, c); n != 1 {
		t.Errorf("%d customers after the panic and one sign-up, want 1", n)
	}
}

// TestStoreFailuresDoNotLeak proves that a store's error of no domain kind
// reaches the caller as Internal with only the request id, and an outage as
// Unavailable with the domain's message, while the cause goes to the log.
func TestStoreFailuresDoNotLeak(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withBackend("testbroken"))
	for name, c := range map[string]customersv1connect.CustomerServiceClient{
		"connect": ts.client(connect.WithProtoJSON()),
		"grpc":    ts.grpcClient(),
	} {
		_, err := c.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
		ce := connectError(t, err, connect.CodeInternal)
		requestID := ce.Meta().Get(gateway.RequestIDHeader)
		if requestID == "" || !strings.Contains(ce.Message(), requestID) {
			t.Errorf("%s: Internal message %q should hold the request id %q", name, ce.Message(), requestID)
		}
		if strings.Contains(err.Error(), "relation") || len(ce.Details()) != 0 {
			t.Errorf("%s: the caller sees the cause: %v (details %v)", name, err, ce.Details())
		}

		_, err = c.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ids.New("cus")}))
		ce = connectError(t, err, connect.CodeUnavailable)
		if ce.Message() != "database unavailable, try again later" {
			t.Errorf("%s: Unavailable message %q, want the domain's", name, ce.Message())
		}
	}
	var causes int
	for _, r := range ts.records(t) {
		if strings.Contains(r.str("error"), brokenCause) {
			causes++
			if r.str("request_id") == "" {
				t.Errorf("the cause is logged without the request id the caller was told to quote: %v", r)
			}
		}
	}
	if causes != 4 {
		t.Errorf("the cause is logged %d times, want once per failed call (4)", causes)
	}
}

// TestRefusedCallsAreLoggedAndCounted proves that a call connect-go refuses
// before any interceptor (a body that does not decode) still gets its
// access-log line and its metric, and that the log does not repeat the
// offending value.
func TestRefusedCallsAreLoggedAndCounted(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/plinth.customers.v1.CustomerService/SignUpCustomer",
		strings.NewReader(`{"name": 9876543210, "email": "x@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.RequestIDHeader, "refused-1")
	res, err := ts.h1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", res.StatusCode)
	}
	// The refusal is logged once the handler returns, which may be just
	// after the client has read the response.
	var line logRecord
	for deadline := time.Now().Add(5 * time.Second); line == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		line = ts.accessLog(t, "refused-1")
	}
	if line == nil {
		t.Fatalf("no access-log line for a refused call; log:\n%s", ts.logs)
	}
	if line.str("code") != "invalid_argument" || line.str("capability") != "/plinth.customers.v1.CustomerService/SignUpCustomer" {
		t.Errorf("access-log line %v", line)
	}
	if strings.Contains(ts.logs.String(), "9876543210") {
		t.Errorf("the log repeats the refused value:\n%s", ts.logs)
	}
	_, body := ts.get(t, "/metrics")
	metrics := string(body)
	if !strings.Contains(metrics, `plinth_capability_calls_total{capability="/plinth.customers.v1.CustomerService/SignUpCustomer",code="invalid_argument"} 1`) {
		t.Errorf("the refused call is not counted:\n%s", metrics)
	}
}

// TestLimits proves that the body limit and the request timeout hold.
func TestLimits(t *testing.T) {
	t.Parallel()

	t.Run("max request bytes", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, withConfig(func(cfg *gateway.Config) { cfg.Limits.MaxRequestBytes = 4096 }))
		big := strings.Repeat("n", 10<<10)
		for name, c := range map[string]customersv1connect.CustomerServiceClient{
			"connect-json":   ts.client(connect.WithProtoJSON()),
			"connect-binary": ts.client(),
			"grpc":           ts.grpcClient(),
		} {
			_, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: big, Email: "big@example.com"}))
			// connect-go refuses a message over WithReadMaxBytes with
			// ResourceExhausted (protocol_connect.go, envelope.go).
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
				t.Errorf("%s: a 10 KiB request with a 4 KiB limit: %v, want resource_exhausted", name, err)
			}
		}
		res, body := ts.post(t, signUpProcedure, "application/json", `{"email":"big@example.com","name":"`+big+`"}`, nil)
		var eb connectErrorBody
		_ = json.Unmarshal(body, &eb)
		if res.StatusCode == http.StatusOK || eb.Code != "resource_exhausted" {
			t.Errorf("plain JSON: a 10 KiB request: %s %s, want resource_exhausted", res.Status, body)
		}
		// Just over the limit, within the slack the HTTP body reader allows:
		// the configured limit is exact.
		_, err := ts.client().SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name: strings.Repeat("n", 4200), Email: "just.over@example.com",
		}))
		connectError(t, err, connect.CodeResourceExhausted)
		if n := countCustomers(t, ts.client()); n != 0 {
			t.Errorf("%d customers stored from oversized requests, want 0", n)
		}
		// A request under the limit still works.
		signUp(t, ts.client(), strings.Repeat("n", 200), "small@example.com")
	})

	t.Run("request timeout", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, withBackend("testblock"), withConfig(func(cfg *gateway.Config) {
			cfg.Limits.RequestTimeout = gateway.Duration(200 * time.Millisecond)
		}))
		for name, c := range map[string]customersv1connect.CustomerServiceClient{
			"connect": ts.client(),
			"grpc":    ts.grpcClient(),
		} {
			_, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Stuck", Email: name + "@example.com"}))
			ce := connectError(t, err, connect.CodeDeadlineExceeded)
			if line := ts.accessLog(t, ce.Meta().Get(gateway.RequestIDHeader)); line.str("code") != "deadline_exceeded" {
				t.Errorf("%s: access log %v, want code deadline_exceeded", name, line)
			}
		}
		_, err := ts.client().GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ids.New("cus")}))
		connectError(t, err, connect.CodeDeadlineExceeded)
	})
}

// TestGracefulShutdown proves that ending Serve's context lets an in-flight
// call finish before Serve returns, and refuses new connections after.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	hooks := &slowHooks{started: make(chan struct{}), finished: make(chan struct{})}
	ts := startServer(t, withBackend("testslow"), withSlowHooks(hooks))
	c := ts.client()

	type result struct {
		res *connect.Response[customersv1.SignUpCustomerResponse]
		err error
	}
	called := make(chan result, 1)
	go func() {
		res, err := c.SignUpCustomer(context.Background(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
			Name: "In Flight", Email: "in.flight@example.com",
		}))
		called <- result{res, err}
	}()

	select {
	case <-hooks.started:
	case r := <-called:
		t.Fatalf("the call ended before the store started: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the store")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()

	var serveErr error
	select {
	case serveErr = <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if serveErr != nil {
		t.Errorf("Serve returned %v, want nil", serveErr)
	}
	select {
	case <-hooks.finished:
	default:
		t.Error("Serve returned before the in-flight call had stored its customer")
	}
	r := <-called
	if r.err != nil {
		t.Fatalf("the in-flight call failed: %v", r.err)
	}
	if r.res.Msg.GetCustomer().GetName() != "In Flight" {
		t.Errorf("the in-flight call returned %v", r.res.Msg.GetCustomer())
	}

	conn, err := net.DialTimeout("tcp", ts.Addr, 2*time.Second)
	if err == nil {
		conn.Close()
		t.Error("a new connection was accepted after shutdown")
	}
	if !strings.Contains(ts.logs.String(), "shut down cleanly") {
		t.Error("no \"shut down cleanly\" in the log")
	}
}

// plainHealthCheck asks grpc.health.v1 about the whole gateway with plain
// JSON, as a probe without a gRPC client would, and returns the status.
//
// connectrpc.com/grpchealth's copy of health.proto names the statuses
// SERVING_STATUS_SERVING and SERVING_STATUS_NOT_SERVING, where grpc's own
// says SERVING and NOT_SERVING; the numbers, and so the binary wire, agree.
func (ts *testServer) plainHealthCheck(t *testing.T) string {
	t.Helper()
	res, body := ts.post(t, "/grpc.health.v1.Health/Check", "application/json", `{"service":""}`, nil)
	var check struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &check); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("plain JSON health check: %s %s (%v)", res.Status, body, err)
	}
	return check.Status
}

// TestHealth proves /healthz, /readyz and grpc.health.v1 over a healthy and
// an unreachable backend.
func TestHealth(t *testing.T) {
	t.Parallel()

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t)
		res, body := ts.get(t, "/healthz")
		if res.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Errorf("/healthz: %s %q, want 200 ok", res.Status, body)
		}
		res, body = ts.get(t, "/readyz")
		if res.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"ready":true}` {
			t.Errorf("/readyz: %s %s, want 200 {\"ready\":true}", res.Status, body)
		}

		for name, hc := range map[string]*grpchealth.Client{
			"connect": grpchealth.NewClient(ts.h1, ts.URL),
			"grpc":    grpchealth.NewClient(ts.h2c, ts.URL, connect.WithGRPC()),
		} {
			for _, service := range []string{"", customerService} {
				got, err := hc.Check(t.Context(), &grpchealth.CheckRequest{Service: service})
				if err != nil || got.Status != grpchealth.StatusServing {
					t.Errorf("%s: Check(%q) = %v, %v, want SERVING", name, service, got, err)
				}
			}
			_, err := hc.Check(t.Context(), &grpchealth.CheckRequest{Service: "no.such.Service"})
			if connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("%s: Check of an unknown service: %v, want not_found", name, err)
			}
		}

		if status := ts.plainHealthCheck(t); status != "SERVING_STATUS_SERVING" {
			t.Errorf("plain JSON health check: status %q, want SERVING_STATUS_SERVING", status)
		}
	})

	t.Run("backend unreachable", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, withBackend("testdown"))
		res, body := ts.get(t, "/healthz")
		if res.StatusCode != http.StatusOK {
			t.Errorf("/healthz: %s, want 200: the process is alive", res.Status)
		}
		res, body = ts.get(t, "/readyz")
		var rep struct {
			Ready       bool     `json:"ready"`
			Unreachable []string `json:"unreachable"`
		}
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("/readyz body is not JSON: %v: %s", err, body)
		}
		if res.StatusCode != http.StatusServiceUnavailable || rep.Ready || !slices.Equal(rep.Unreachable, []string{"customers"}) {
			t.Errorf("/readyz: %s %s, want 503 with customers unreachable", res.Status, body)
		}
		if strings.Contains(string(body), "10.9.8.7") {
			t.Errorf("/readyz tells the caller why: %s", body)
		}
		if !strings.Contains(ts.logs.String(), downPingError) {
			t.Error("the log does not say why the backend is not ready")
		}

		hc := grpchealth.NewClient(ts.h1, ts.URL)
		for _, service := range []string{"", customerService} {
			got, err := hc.Check(t.Context(), &grpchealth.CheckRequest{Service: service})
			if err != nil || got.Status != grpchealth.StatusNotServing {
				t.Errorf("Check(%q) = %v, %v, want NOT_SERVING", service, got, err)
			}
		}
		if status := ts.plainHealthCheck(t); status != "SERVING_STATUS_NOT_SERVING" {
			t.Errorf("plain JSON health check: status %q, want SERVING_STATUS_NOT_SERVING", status)
		}
	})
}

// TestReflection proves that server reflection lists the services and hands
// out their descriptors, so that grpcurl and buf curl work without protos.
func TestReflection(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	client := grpcreflect.NewClient(ts.h2c, ts.URL, connect.WithGRPC())
	stream := client.NewStream(t.Context())
	defer stream.Close()

	services, err := stream.ListServices()
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	for _, want := range []protoreflect.FullName{customerService, grpchealth.HealthV1ServiceName} {
		if !slices.Contains(services, want) {
			t.Errorf("ListServices = %v, want %s in it", services, want)
		}
	}

	files, err := stream.FileContainingSymbol(customerService)
	if err != nil {
		t.Fatalf("FileContainingSymbol: %v", err)
	}
	var methods []string
	for _, f := range files {
		if f.GetName() != "plinth/customers/v1/customers.proto" {
			continue
		}
		for _, s := range f.GetService() {
			if s.GetName() == "CustomerService" {
				for _, m := range s.GetMethod() {
					methods = append(methods, m.GetName())
				}
			}
		}
	}
	if len(methods) != 11 || !slices.Contains(methods, "SignUpCustomer") {
		t.Errorf("the reflected customers.proto has methods %v, want the 11 capabilities", methods)
	}
}

// TestMetrics proves that calls are counted by capability and code, and
// timed.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	c := ts.client()
	for i := range 3 {
		signUp(t, c, "Counted", "counted"+string(rune('a'+i))+"@example.com")
	}
	_, err := c.SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Email: "nameless@example.com"}))
	connectError(t, err, connect.CodeInvalidArgument)
	_, err = c.GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: ids.New("cus")}))
	connectError(t, err, connect.CodeNotFound)

	res, body := ts.get(t, "/metrics")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", res.Status)
	}
	text := string(body)
	for _, want := range []string{
		`plinth_capability_calls_total{capability="` + signUpProcedure + `",code="ok"} 3` + "\n",
		`plinth_capability_calls_total{capability="` + signUpProcedure + `",code="invalid_argument"} 1` + "\n",
		`plinth_capability_calls_total{capability="` + getProcedure + `",code="not_found"} 1` + "\n",
		`plinth_capability_duration_seconds_bucket{capability="` + signUpProcedure + `",le="+Inf"} 4` + "\n",
		`plinth_capability_duration_seconds_count{capability="` + signUpProcedure + `"} 4` + "\n",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

// TestStartupRefusals proves that a configuration naming what does not
// exist stops New with a message that says what to fix.
func TestStartupRefusals(t *testing.T) {
	t.Parallel()
	newWith := func(t *testing.T, change func(*gateway.Config)) error {
		cfg := testConfig()
		change(&cfg)
		srv, err := gateway.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			srv.Close()
			t.Fatal("New succeeded, want an error")
		}
		return err
	}

	t.Run("unknown backend", func(t *testing.T) {
		t.Parallel()
		err := newWith(t, func(cfg *gateway.Config) { cfg.Backends["customers"] = "nosuch" })
		if msg := err.Error(); !strings.Contains(msg, `"nosuch"`) || !strings.Contains(msg, "memory") || !strings.Contains(msg, "customers") {
			t.Errorf("error %q should name the backend, the domain and the known backends", msg)
		}
	})
	t.Run("unknown domain", func(t *testing.T) {
		t.Parallel()
		err := newWith(t, func(cfg *gateway.Config) { cfg.Backends["nosuchdomain"] = "memory" })
		if msg := err.Error(); !strings.Contains(msg, "nosuchdomain") || !strings.Contains(msg, "customers") {
			t.Errorf("error %q should name the unknown domain and the known ones", msg)
		}
	})
	t.Run("postgres without url", func(t *testing.T) {
		t.Parallel()
		if _, err := registry.LookupBackend("customers", "postgres"); err != nil {
			t.Skip("the customers postgres backend is not linked into this test")
		}
		for _, migrate := range []bool{false, true} {
			err := newWith(t, func(cfg *gateway.Config) {
				cfg.Backends["customers"] = "postgres"
				cfg.Postgres.MigrateOnStart = migrate
			})
			if !strings.Contains(err.Error(), "postgres.url") {
				t.Errorf("migrate_on_start=%v: error %q should tell to set postgres.url", migrate, err)
			}
		}
	})
}
