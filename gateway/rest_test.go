package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/idempotency"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

// restCall is one REST request as curl would send it.
type restCall struct {
	method, path string
	key          string // the bearer API key; none if empty
	idemKey      string // the Idempotency-Key; none if empty
	requestID    string
	body         string
}

// restAnswer is a REST response with its JSON body.
type restAnswer struct {
	status int
	header http.Header
	raw    string
	json   map[string]any
}

// restStatus is the JSON body of a REST error: a google.rpc.Status.
type restStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type       string `json:"@type"`
		Violations []struct {
			Field struct {
				Elements []struct {
					FieldName string `json:"fieldName"`
				} `json:"elements"`
			} `json:"field"`
			RuleID string `json:"ruleId"`
		} `json:"violations"`
		Reason string `json:"reason"`
	} `json:"details"`
}

func (ts *testServer) rest(t *testing.T, c restCall) restAnswer {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, ts.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.idemKey != "" {
		req.Header.Set(idempotency.Header, c.idemKey)
	}
	if c.requestID != "" {
		req.Header.Set(gateway.RequestIDHeader, c.requestID)
	}
	res, raw := ts.do(t, req)
	a := restAnswer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.json); err != nil {
			t.Fatalf("%s %s: the answer is not JSON (%v): %s", c.method, c.path, err, raw)
		}
	}
	return a
}

// refusal parses a REST error, after checking its HTTP status and code.
func (a restAnswer) refusal(t *testing.T, httpStatus int, code connect.Code) restStatus {
	t.Helper()
	if a.status != httpStatus {
		t.Fatalf("HTTP status %d, want %d: %s", a.status, httpStatus, a.raw)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("an error's Content-Type is %q, want application/json", ct)
	}
	var st restStatus
	if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
		t.Fatalf("the error is not a JSON google.rpc.Status (%v): %s", err, a.raw)
	}
	if connect.Code(st.Code) != code {
		t.Fatalf("code %d (%s), want %d (%s): %s", st.Code, connect.Code(st.Code), code, code, a.raw)
	}
	return st
}

// customer returns the customer of an answer, or fails.
func (a restAnswer) customer(t *testing.T) map[string]any {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200: %s", a.status, a.raw)
	}
	c, ok := a.json["customer"].(map[string]any)
	if !ok {
		t.Fatalf("no customer in %s", a.raw)
	}
	return c
}

// TestREST proves that a capability's REST path has what its procedure
// has: authentication and scopes, idempotency, validation with every
// violation in the details, masking, the access log and the audit, with
// errors as JSON and HTTP statuses.
func TestREST(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withConfig(func(cfg *gateway.Config) {
		cfg.Auth.Roles = map[string]gateway.RoleConfig{
			"support": {Scopes: []string{"customers.read"}, Reveal: []string{"pii"}},
			"reader":  {Scopes: []string{"customers.read"}},
			"ledger":  {Scopes: []string{"ledger.read"}},
		}
	}))
	_, supportKey, _ := newPrincipal(t, ts, "support-console", "support")
	_, readerKey, _ := newPrincipal(t, ts, "analytics", "reader")
	_, ledgerKey, _ := newPrincipal(t, ts, "ledger-app", "ledger")

	const signUpBody = `{"name": "Ada Lovelace", "email": "ada@example.com", "taxId": "123-45-6789", "phone": "+14155550100"}`
	var id string

	t.Run("a sign-up without an Idempotency-Key is refused", func(t *testing.T) {
		st := ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, body: signUpBody}).
			refusal(t, http.StatusBadRequest, connect.CodeInvalidArgument)
		if !strings.Contains(st.Message, "Idempotency-Key") {
			t.Errorf("message %q should name the header", st.Message)
		}
	})

	t.Run("a sign-up with a key creates; its retry gets the same customer", func(t *testing.T) {
		first := ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, idemKey: "rest-sign-up-1", body: signUpBody})
		c := first.customer(t)
		id, _ = c["id"].(string)
		if !strings.HasPrefix(id, "cus_") || c["state"] != "CUSTOMER_STATE_PENDING" || c["name"] != "Ada Lovelace" {
			t.Fatalf("signed up %v", c)
		}
		if first.header.Get(idempotency.ReplayedHeader) != "" {
			t.Error("a first answer is marked as replayed")
		}
		if first.header.Get(gateway.RequestIDHeader) == "" {
			t.Error("no request id on a REST answer")
		}
		again := ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, idemKey: "rest-sign-up-1", body: signUpBody})
		if got := again.customer(t); got["id"] != id || got["createdAt"] != c["createdAt"] {
			t.Errorf("the retry answered %v, want the first answer %v", got, c)
		}
		if again.header.Get(idempotency.ReplayedHeader) != "true" {
			t.Errorf("a replayed answer lacks %s: true", idempotency.ReplayedHeader)
		}
		// The key is the caller's, whatever the protocol: the same call
		// through the procedure is a replay too.
		req := connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "Ada Lovelace", Email: "ada@example.com", TaxId: "123-45-6789", Phone: "+14155550100"})
		req.Header().Set(idempotency.Header, "rest-sign-up-1")
		res, err := ts.client().SignUpCustomer(t.Context(), req)
		if err != nil || res.Msg.GetCustomer().GetId() != id || res.Header().Get(idempotency.ReplayedHeader) != "true" {
			t.Errorf("the same key through Connect: %v, %v; want a replay of %s", res, err, id)
		}
		if n := countCustomers(t, ts.client()); n != 1 {
			t.Errorf("%d customers after retries, want 1", n)
		}
		// The same key for another request is refused.
		ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, idemKey: "rest-sign-up-1", body: `{"name": "Grace", "email": "grace@example.com"}`}).
			refusal(t, http.StatusBadRequest, connect.CodeFailedPrecondition)
	})
	if id == "" {
		t.Fatal("no customer to go on with")
	}

	t.Run("GET /v1/customers/{customer_id} needs a key with the scope", func(t *testing.T) {
		path := "/v1/customers/" + id
		if got := ts.rest(t, restCall{method: "GET", path: path, key: ts.key}).customer(t); got["id"] != id || got["taxId"] != "123-45-6789" {
			t.Errorf("GET %s: %v", path, got)
		}
		for name, key := range map[string]string{"no key": "", "a bad key": "plk_00000000_" + strings.Repeat("0", 64)} {
			st := ts.rest(t, restCall{method: "GET", path: path, key: key}).refusal(t, http.StatusUnauthorized, connect.CodeUnauthenticated)
			if st.Message == "" {
				t.Errorf("%s: an empty message", name)
			}
		}
		ts.rest(t, restCall{method: "GET", path: path, key: ledgerKey}).refusal(t, http.StatusForbidden, connect.CodePermissionDenied)
		// A mutation with a read-only key is refused before its key is
		// looked at.
		ts.rest(t, restCall{method: "POST", path: path + ":close", key: readerKey, idemKey: "rest-close-1", body: `{}`}).
			refusal(t, http.StatusForbidden, connect.CodePermissionDenied)
		ts.rest(t, restCall{method: "GET", path: "/v1/customers/cus_" + strings.Repeat("Z", 26), key: ts.key}).
			refusal(t, http.StatusNotFound, connect.CodeNotFound)
	})

	t.Run("a request that breaks the contract is refused with every violation", func(t *testing.T) {
		st := ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, idemKey: "rest-invalid-1",
			body: `{"name": "", "email": "not-an-email"}`}).
			refusal(t, http.StatusBadRequest, connect.CodeInvalidArgument)
		fields := map[string]bool{}
		for _, d := range st.Details {
			if d.Type != "type.googleapis.com/buf.validate.Violations" {
				continue
			}
			for _, v := range d.Violations {
				for _, el := range v.Field.Elements {
					fields[el.FieldName] = true
				}
			}
		}
		if !fields["name"] || !fields["email"] {
			t.Errorf("violated fields %v, want name and email: %s", fields, st.Message)
		}
		// A path variable is validated like any field.
		ts.rest(t, restCall{method: "GET", path: "/v1/customers/not-an-id", key: ts.key}).
			refusal(t, http.StatusBadRequest, connect.CodeInvalidArgument)
		// An invalid request never claimed its key: the valid one runs.
		res := ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, idemKey: "rest-invalid-1",
			body: `{"name": "Grace Hopper", "email": "grace@example.com"}`})
		if c := res.customer(t); c["name"] != "Grace Hopper" || res.header.Get(idempotency.ReplayedHeader) != "" {
			t.Errorf("the key of an invalid request: %v", res.raw)
		}
	})

	t.Run("answers are masked for a caller who may not reveal them", func(t *testing.T) {
		path := "/v1/customers/" + id
		masked := ts.rest(t, restCall{method: "GET", path: path, key: readerKey, requestID: "rest-masked"}).customer(t)
		if masked["name"] != "****" || masked["email"] != "***@example.com" || masked["taxId"] != "****6789" || masked["phone"] != "****0100" || masked["id"] != id {
			t.Errorf("a caller without reveal got %v, want masks", masked)
		}
		shown := ts.rest(t, restCall{method: "GET", path: path, key: supportKey, requestID: "rest-shown"}).customer(t)
		if shown["name"] != "Ada Lovelace" || shown["taxId"] != "123-45-6789" {
			t.Errorf("a caller with reveal got %v, want the values", shown)
		}
		// One access-log line each, under the capability's procedure.
		if line := ts.accessLog(t, "rest-shown"); line.str("capability") != "/plinth.customers.v1.CustomerService/GetCustomer" || line.str("revealed") != "pii" {
			t.Errorf("access log of a REST reveal: %v", line)
		}
		if line := ts.accessLog(t, "rest-masked"); line == nil || line.str("revealed") != "" {
			t.Errorf("access log of a masked REST answer: %v", line)
		}
		// A list is masked the same.
		list := ts.rest(t, restCall{method: "GET", path: "/v1/customers?pageSize=10&state=CUSTOMER_STATE_PENDING", key: readerKey})
		customers, _ := list.json["customers"].([]any)
		if list.status != http.StatusOK || len(customers) != 2 {
			t.Fatalf("GET /v1/customers?pageSize=10&state=...: %d %s", list.status, list.raw)
		}
		for _, c := range customers {
			if name := c.(map[string]any)["name"]; name != "****" {
				t.Errorf("a listed customer's name is %v, want a mask", name)
			}
		}
	})

	t.Run("custom methods change state; an illegal change is refused", func(t *testing.T) {
		path := "/v1/customers/" + id + ":approve"
		if c := ts.rest(t, restCall{method: "POST", path: path, key: ts.key, idemKey: "rest-approve-1"}).customer(t); c["state"] != "CUSTOMER_STATE_APPROVED" {
			t.Errorf("approved: %v", c)
		}
		st := ts.rest(t, restCall{method: "POST", path: path, key: ts.key, idemKey: "rest-approve-2", body: `{}`}).
			refusal(t, http.StatusBadRequest, connect.CodeFailedPrecondition)
		if !strings.Contains(st.Message, "APPROVED") {
			t.Errorf("the refusal %q should name the state", st.Message)
		}
		var reason string
		for _, d := range st.Details {
			if d.Type == "type.googleapis.com/google.rpc.ErrorInfo" {
				reason = d.Reason
			}
		}
		if reason != "ILLEGAL_TRANSITION" {
			t.Errorf("the refusal's ErrorInfo reason is %q: %s", reason, st.Message)
		}
		patched := ts.rest(t, restCall{method: "PATCH", path: "/v1/customers/" + id, key: ts.key, idemKey: "rest-patch-1", body: `{"phone": "+442071234567"}`}).customer(t)
		if patched["phone"] != "+442071234567" || patched["taxId"] != "123-45-6789" {
			t.Errorf("patched: %v", patched)
		}
		// An email never travels in a URL: finding by email is a POST.
		found := ts.rest(t, restCall{method: "POST", path: "/v1/customers:findByEmail", key: ts.key, body: `{"email": "ADA@example.com"}`}).customer(t)
		if found["id"] != id {
			t.Errorf("found %v", found)
		}
	})

	t.Run("a call refused before any interceptor is logged and counted", func(t *testing.T) {
		res := ts.rest(t, restCall{method: "POST", path: "/v1/customers", key: ts.key, idemKey: "rest-bad-json", requestID: "rest-refused",
			body: `{"name": 9876543210}`})
		if res.status != http.StatusBadRequest {
			t.Fatalf("a body that does not decode: %d %s", res.status, res.raw)
		}
		var line logRecord
		for deadline := time.Now().Add(5 * time.Second); line == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			line = ts.accessLog(t, "rest-refused")
		}
		if line.str("capability") != "/plinth.customers.v1.CustomerService/SignUpCustomer" || line.str("code") != "invalid_argument" || line.str("protocol") != "rest" {
			t.Errorf("access-log line of a refused REST call: %v", line)
		}
		if strings.Contains(ts.logs.String(), "9876543210") {
			t.Error("the log repeats the refused value")
		}
	})

	t.Run("what does not decode is refused, and never runs the capability", func(t *testing.T) {
		for i, c := range []struct {
			restCall
			httpStatus int
			code       connect.Code
			says       string
		}{
			{restCall{method: "GET", path: "/v1/customers?pageSize=abc"}, http.StatusBadRequest, connect.CodeInvalidArgument, "page_size"},
			{restCall{method: "GET", path: "/v1/customers?state=CUSTOMER_STATE_NOPE"}, http.StatusBadRequest, connect.CodeInvalidArgument, "state"},
			{restCall{method: "GET", path: "/v1/customers?limit=5"}, http.StatusBadRequest, connect.CodeInvalidArgument, `"limit"`},
			{restCall{method: "GET", path: "/v1/customers/" + id, body: `{}`}, http.StatusBadRequest, connect.CodeInvalidArgument, "takes no body"},
			{restCall{method: "POST", path: "/v1/customers:findByEmail", body: `not json`}, http.StatusBadRequest, connect.CodeInvalidArgument, "JSON"},
			// A mutation that does not decode claims no key, and changes
			// nothing.
			{restCall{method: "POST", path: "/v1/customers/" + id + ":close", idemKey: "rest-close-bad", body: `{"reason": 42}`}, http.StatusBadRequest, connect.CodeInvalidArgument, "JSON"},
		} {
			c.key = ts.key
			c.requestID = fmt.Sprintf("rest-undecodable-%d", i)
			st := ts.rest(t, c.restCall).refusal(t, c.httpStatus, c.code)
			if !strings.Contains(st.Message, c.says) {
				t.Errorf("%s %s: message %q should say %s", c.method, c.path, st.Message, c.says)
			}
			// One access-log line, the refusal's: the capability did not
			// run (accessLog fails on a second line).
			if line := ts.accessLog(t, c.requestID); line.str("protocol") != "rest" || line.str("code") != "invalid_argument" {
				t.Errorf("%s %s: access-log line %v", c.method, c.path, line)
			}
		}
		res := ts.rest(t, restCall{method: "POST", path: "/v1/customers/" + id + ":close", key: ts.key, idemKey: "rest-close-bad", body: `{"reason": "moved away"}`})
		if c := res.customer(t); c["state"] != "CUSTOMER_STATE_CLOSED" || res.header.Get(idempotency.ReplayedHeader) != "" {
			t.Errorf("closing with the key of a call that did not decode: %s", res.raw)
		}
	})

	t.Run("paths that name no capability", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
		}{
			{"GET", "/v1/nothing", http.StatusNotFound},
			{"DELETE", "/v1/customers", http.StatusMethodNotAllowed},
		} {
			req, err := http.NewRequestWithContext(t.Context(), c.method, ts.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+ts.key)
			if res, body := ts.do(t, req); res.StatusCode != c.status {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, res.StatusCode, body, c.status)
			}
		}
	})

	t.Run("REST calls are audited as their capabilities", func(t *testing.T) {
		auditor := auditv1connect.NewAuditServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key))
		capability := "/plinth.customers.v1.CustomerService/GetCustomer"
		list, err := auditor.ListAuditRecords(t.Context(), connect.NewRequest(&auditv1.ListAuditRecordsRequest{PageSize: 200, Capability: &capability}))
		if err != nil {
			t.Fatal(err)
		}
		codes := map[string]int{}
		for _, r := range list.Msg.GetAuditRecords() {
			codes[r.GetCode()]++
		}
		// Above: admin, support and reader ok, and one not found; two
		// unauthenticated, one permission denied, one invalid.
		if codes["ok"] < 3 || codes["unauthenticated"] != 2 || codes["permission_denied"] != 1 || codes["not_found"] != 1 {
			t.Errorf("audited REST GetCustomer calls by code: %v", codes)
		}
		// And over REST too.
		res := ts.rest(t, restCall{method: "POST", path: "/v1/audit:verify", key: ts.key})
		if res.status != http.StatusOK || res.json["ok"] != true {
			t.Errorf("POST /v1/audit:verify: %d %s", res.status, res.raw)
		}
	})
}
