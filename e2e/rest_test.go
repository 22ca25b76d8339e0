package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"plinth.dev/plinth/sdk/go/plinth"
)

// restClient calls the REST paths of a running gateway as curl would.
type restClient struct {
	t    *testing.T
	base string
	key  string
}

// call sends one request, with an Idempotency-Key when idemKey is not
// empty, and returns the HTTP status, the headers and the JSON answer.
func (c restClient) call(method, path, idemKey, body string) (int, http.Header, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var answer map[string]any
	if err := json.Unmarshal(raw, &answer); err != nil {
		c.t.Fatalf("%s %s: %d, not JSON: %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, res.Header, answer
}

// ok calls and fails the test unless the answer is a 200; it returns the
// answer's field named what, an object.
func (c restClient) ok(method, path, idemKey, body, what string) map[string]any {
	c.t.Helper()
	status, _, answer := c.call(method, path, idemKey, body)
	obj, _ := answer[what].(map[string]any)
	if status != http.StatusOK || obj == nil {
		c.t.Fatalf("%s %s: %d %v, want 200 with a %s", method, path, status, answer, what)
	}
	return obj
}

// TestRESTThroughTheBinary signs up a customer, reads it back, opens two
// ledger accounts and moves money between them, all on the REST paths of
// the real binary, with retries, a refusal and the catalog's REST
// examples run through curl as printed.
func TestRESTThroughTheBinary(t *testing.T) {
	base, key := startDev(t)
	c := restClient{t: t, base: base, key: key}

	customer := c.ok("POST", "/v1/customers", "rest-e2e-signup",
		`{"name": "Ada Lovelace", "email": "ada.rest@example.com", "taxId": "123-45-6789"}`, "customer")
	id, _ := customer["id"].(string)
	if !strings.HasPrefix(id, "cus_") || customer["state"] != "CUSTOMER_STATE_PENDING" {
		t.Fatalf("signed up %v", customer)
	}
	if got := c.ok("GET", "/v1/customers/"+id, "", "", "customer"); got["id"] != id || got["email"] != "ada.rest@example.com" {
		t.Errorf("GET /v1/customers/%s: %v", id, got)
	}

	platform := c.ok("POST", "/v1/ledger/accounts", "rest-e2e-platform",
		`{"currency": "USD", "balancePolicy": "BALANCE_POLICY_UNRESTRICTED", "description": "platform settlement"}`, "account")
	wallet := c.ok("POST", "/v1/ledger/accounts", "rest-e2e-wallet",
		fmt.Sprintf(`{"currency": "USD", "customerId": %q, "balancePolicy": "BALANCE_POLICY_NON_NEGATIVE"}`, id), "account")
	move := fmt.Sprintf(`{"currency": "USD", "legs": [{"fromAccountId": %q, "toAccountId": %q, "amount": 1050}]}`, platform["id"], wallet["id"])
	transfer := c.ok("POST", "/v1/transfers", "rest-e2e-payout-1", move, "transfer")
	tid, _ := transfer["id"].(string)
	if !strings.HasPrefix(tid, "trf_") {
		t.Fatalf("moved money: %v", transfer)
	}

	// A retry with the same key is the same transfer, not a second one.
	status, header, again := c.call("POST", "/v1/transfers", "rest-e2e-payout-1", move)
	if got, _ := again["transfer"].(map[string]any); status != http.StatusOK || got["id"] != tid || header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry of the transfer: %d %v (%s)", status, again, header.Get("Idempotent-Replayed"))
	}
	status, _, balance := c.call("GET", fmt.Sprintf("/v1/ledger/accounts/%s/balance", wallet["id"]), "", "")
	if status != http.StatusOK || fmt.Sprint(balance["postedBalance"]) != "1050" || fmt.Sprint(balance["availableBalance"]) != "1050" {
		t.Errorf("the wallet's balance after one transfer and its retry: %d %v", status, balance)
	}
	if got := c.ok("GET", "/v1/transfers/"+tid, "", "", "transfer"); got["id"] != tid {
		t.Errorf("GET /v1/transfers/%s: %v", tid, got)
	}
	// What the customer owns across domains: themselves and the wallet;
	// one resource by id; a transfer is not a resource.
	status, _, owned := c.call("GET", "/v1/customers/"+id+"/resources?pageSize=1", "", "")
	if rs, _ := owned["resources"].([]any); status != http.StatusOK || len(rs) != 1 || rs[0].(map[string]any)["id"] != id || owned["nextPageToken"] == "" {
		t.Errorf("GET /v1/customers/%s/resources?pageSize=1: %d %v, want the customer and a next page", id, status, owned)
	}
	if got := c.ok("GET", fmt.Sprintf("/v1/resources/%s", wallet["id"]), "", "", "resource"); got["type"] != "ledger_account" || got["customerId"] != id {
		t.Errorf("GET /v1/resources/%s: %v", wallet["id"], got)
	}
	if status, _, refusal := c.call("GET", "/v1/resources/"+tid, "", ""); status != http.StatusBadRequest || fmt.Sprint(refusal["code"]) != "3" {
		t.Errorf("GET /v1/resources/%s: %d %v, want 400 with code 3 (invalid_argument)", tid, status, refusal)
	}

	// The wallet may not go below zero: a domain refusal, in JSON.
	overdraw := fmt.Sprintf(`{"currency": "USD", "legs": [{"fromAccountId": %q, "toAccountId": %q, "amount": 5000}]}`, wallet["id"], platform["id"])
	status, _, refusal := c.call("POST", "/v1/transfers", plinth.NewIdempotencyKey(), overdraw)
	if status != http.StatusBadRequest || fmt.Sprint(refusal["code"]) != "9" || refusal["message"] == "" {
		t.Errorf("overdrawing the wallet: %d %v, want 400 with code 9 (failed_precondition)", status, refusal)
	}
	// And a call without a key is unauthenticated.
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/v1/customers/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a key: %d, want 401", res.StatusCode)
	}

	// The catalog's REST examples of the capabilities that create things
	// work as printed.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl is not installed: the catalog's REST examples are not run")
		return
	}
	res, err = http.Get(base + "/catalog")
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, resource, prefix string }{
		{"plinth.customers.v1.CustomerService.SignUpCustomer", "customer", "cus_"},
		{"plinth.ledger.v1.LedgerService.OpenLedgerAccount", "account", "lac_"},
		{"plinth.access.v1.AccessService.CreatePrincipal", "principal", "prn_"},
	} {
		m := regexp.MustCompile(`(?s)<details class="cap" id="` + regexp.QuoteMeta(tc.id) + `".*?<code class="rest-curl">(.*?)</code>`).FindSubmatch(page)
		if m == nil {
			t.Errorf("%s: no REST example on the catalog page", tc.id)
			continue
		}
		command := html.UnescapeString(string(m[1]))
		cmd := exec.Command("sh", "-c", command)
		cmd.Env = append(os.Environ(), "PLINTH_API_KEY="+key)
		out, err := cmd.CombinedOutput()
		var answer map[string]map[string]any
		if err != nil || json.Unmarshal(out, &answer) != nil || !strings.HasPrefix(fmt.Sprint(answer[tc.resource]["id"]), tc.prefix) {
			t.Errorf("%s: the REST example (%v):\n%s\nanswered:\n%s", tc.id, err, command, out)
		}
	}
}
