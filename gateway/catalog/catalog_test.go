package catalog_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	_ "plinth.dev/plinth/capabilities/all" // every domain, as the binary has them
	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/catalog"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

var (
	serverOnce sync.Once
	server     *gateway.Server
	serverErr  error
)

// gatewayServer is a gateway configured as `plinth dev` configures it: the
// capabilities it serves are the ones the catalog shows.
func gatewayServer(t *testing.T) *gateway.Server {
	t.Helper()
	serverOnce.Do(func() {
		cfg := gateway.DefaultConfig()
		cfg.Listen = "127.0.0.1:0"
		server, serverErr = gateway.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	})
	if serverErr != nil {
		t.Fatalf("gateway.New: %v", serverErr)
	}
	return server
}

func entries(t *testing.T) []catalog.Entry {
	var out []catalog.Entry
	for _, c := range gatewayServer(t).Capabilities() {
		// As the gateway makes them: it serves every REST route of the
		// contracts.
		out = append(out, catalog.Entry{Procedure: c.Procedure, Domain: c.Domain, Method: c.Method,
			Owner: c.Owner, Scope: c.Scope, Mutates: c.Mutates, Stability: c.Stability, Summary: c.Summary,
			Routes: catalog.HTTPRoutes(c.Method)})
	}
	return out
}

var (
	catOnce sync.Once
	cat     *catalog.Catalog
	catErr  error
)

func build(t *testing.T) *catalog.Catalog {
	t.Helper()
	es := entries(t)
	catOnce.Do(func() { cat, catErr = catalog.Build(es) })
	if catErr != nil {
		t.Fatalf("Build: %v", catErr)
	}
	return cat
}

func capability(t *testing.T, name string) *catalog.Capability {
	t.Helper()
	for _, d := range build(t).Domains {
		for _, c := range d.Capabilities {
			if c.Name == name {
				return c
			}
		}
	}
	t.Fatalf("no capability %s in the catalog", name)
	return nil
}

func field(t *testing.T, typ *catalog.Type, jsonName string) *catalog.Field {
	t.Helper()
	for _, f := range typ.Fields {
		if f.JSONName == jsonName {
			return f
		}
	}
	t.Fatalf("%s has no field %s", typ.FullName, jsonName)
	return nil
}

func rules(f *catalog.Field) []string {
	var out []string
	for _, r := range f.Rules {
		out = append(out, strings.TrimSpace(r.Text+" "+r.Code))
	}
	return out
}

// creators are the capabilities whose examples must succeed as printed:
// they name no resource that must exist first.
var creators = []string{"SignUpCustomer", "OpenLedgerAccount", "CreatePrincipal"}

// TestEveryExampleValidates proves that every capability's example request
// passes the contract's validation, and that only ids of resources that
// must exist are placeholders.
func TestEveryExampleValidates(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range build(t).Domains {
		for _, c := range d.Capabilities {
			n++
			if c.Example == nil {
				t.Errorf("%s: no example: %s", c.Name, c.ExampleErr)
				continue
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(c.Request.FullName))
			if err != nil {
				t.Fatal(err)
			}
			msg := mt.New().Interface()
			if err := protojson.Unmarshal([]byte(c.Example.Body), msg); err != nil {
				t.Errorf("%s: the example body %s is not the request's JSON: %v", c.Name, c.Example.Body, err)
				continue
			}
			if err := v.Validate(msg); err != nil {
				t.Errorf("%s: the example body %s does not validate: %v", c.Name, c.Example.Body, err)
			}
			for _, p := range c.Example.Placeholders {
				if !regexp.MustCompile(`(^|\.)(id|[a-zA-Z]+Id)$`).MatchString(strings.ReplaceAll(p.Field, "[0]", "")) {
					t.Errorf("%s: placeholder %s=%s is not an id", c.Name, p.Field, p.Value)
				}
			}
			if slices.Contains(creators, c.Name) && len(c.Example.Placeholders) > 0 {
				t.Errorf("%s creates what it names, but its example has placeholders %v", c.Name, c.Example.Placeholders)
			}
		}
	}
	if n != len(entries(t)) || n < 30 {
		t.Errorf("the catalog has %d capabilities, the gateway serves %d", n, len(entries(t)))
	}
}

func TestExamples(t *testing.T) {
	for name, want := range map[string]string{
		"SignUpCustomer":        `{"name":"Ada Lovelace","email":"ada@example.com"}`,
		"OpenLedgerAccount":     `{"currency":"USD","balancePolicy":"BALANCE_POLICY_NON_NEGATIVE"}`,
		"CreatePrincipal":       `{"name":"payroll-app"}`,
		"VerifyAuditChain":      `{}`,
		"UpdateCustomerProfile": `{"customerId":"cus_00000000000000000000000000","name":"Ada Lovelace"}`,
		"MoveMoney":             `{"currency":"USD","legs":[{"fromAccountId":"lac_00000000000000000000000000","toAccountId":"lac_11111111111111111111111111","amount":"100"}]}`,
		"HoldFunds":             `{"accountId":"lac_00000000000000000000000000","amount":"100","ttl":"3600s"}`,
	} {
		if got := capability(t, name).Example.Body; got != want {
			t.Errorf("%s: example %s, want %s", name, got, want)
		}
	}
	ph := capability(t, "MoveMoney").Example.Placeholders
	if len(ph) != 2 || ph[0].Field != "legs[0].fromAccountId" || ph[1].Field != "legs[0].toAccountId" {
		t.Errorf("MoveMoney's placeholders: %+v", ph)
	}
}

func TestCurl(t *testing.T) {
	c := capability(t, "SignUpCustomer")
	got := catalog.Curl("http://127.0.0.1:8080", c)
	want := `curl -sS -X POST 'http://127.0.0.1:8080/plinth.customers.v1.CustomerService/SignUpCustomer' \
  -H "Authorization: Bearer $PLINTH_API_KEY" \
  -H 'Content-Type: application/json' \
  -H "Idempotency-Key: catalog-$(date +%s)-$$" \
  -d '{"name":"Ada Lovelace","email":"ada@example.com"}'`
	if got != want {
		t.Errorf("curl:\n%s\nwant:\n%s", got, want)
	}
	if got := catalog.Curl("http://h", capability(t, "GetCustomer")); strings.Contains(got, "Idempotency-Key") {
		t.Errorf("a read-only capability's example sends an Idempotency-Key:\n%s", got)
	}
	quoted := *c
	quoted.Example = &catalog.Example{Body: `{"name":"O'Brien"}`}
	if got := catalog.Curl("http://h", &quoted); !strings.HasSuffix(got, `-d '{"name":"O'\''Brien"}'`) {
		t.Errorf("a quote in the body is not quoted for the shell:\n%s", got)
	}
}

func TestCommentsAndPolicy(t *testing.T) {
	c := capability(t, "SignUpCustomer")
	if c.ID != "plinth.customers.v1.CustomerService.SignUpCustomer" || c.Domain != "customers" ||
		c.Owner != "customer-platform" || c.Scope != "customers.write" || !c.Mutates || c.Stability != "stable" {
		t.Errorf("SignUpCustomer: %+v", c)
	}
	if len(c.Description) == 0 || !strings.HasPrefix(c.Description[0].Text, "SignUpCustomer records a new customer") {
		t.Errorf("SignUpCustomer's description is not its comment: %+v", c.Description)
	}
	if got := field(t, c.Request, "name").Description; len(got) != 1 || got[0].Text != "The customer's full legal name." {
		t.Errorf("name's description: %+v", got)
	}
	if !slices.Equal(c.Classes, []string{"PII"}) {
		t.Errorf("SignUpCustomer's classes: %v", c.Classes)
	}
	if len(c.Routes) != 2 || c.Routes[0].Method != "POST" || c.Routes[0].Path != c.Procedure ||
		c.Routes[1].Method != "POST" || c.Routes[1].Path != "/v1/customers" || c.Routes[1].Body != "*" {
		t.Errorf("routes: %+v", c.Routes)
	}
	// The customers domain's overview keeps its lifecycle diagram.
	var overview []catalog.Block
	for _, d := range build(t).Domains {
		if d.Name == "customers" {
			overview = d.Overview
		}
	}
	if !slices.ContainsFunc(overview, func(b catalog.Block) bool {
		return b.Pre && strings.Contains(b.Text, "PENDING ───") && strings.Contains(b.Text, "\n")
	}) {
		t.Errorf("the customers overview lost its diagram: %+v", overview)
	}
	// Types used by responses are defined once, with enum values' comments.
	var customer, state *catalog.Type
	for _, d := range build(t).Domains {
		for _, ty := range d.Types {
			switch ty.FullName {
			case "plinth.customers.v1.Customer":
				customer = ty
			case "plinth.customers.v1.CustomerState":
				state = ty
			}
		}
	}
	if customer == nil || state == nil {
		t.Fatal("Customer or CustomerState is not defined on the page")
	}
	if f := field(t, c.Response, "customer"); f.TypeRef != customer.ID {
		t.Errorf("the response's customer links to %q, want %q", f.TypeRef, customer.ID)
	}
	if f := field(t, customer, "email"); f.Sensitivity != "PII" {
		t.Errorf("Customer.email: sensitivity %q", f.Sensitivity)
	}
	if f := field(t, customer, "createdAt"); f.TypeName != "timestamp" || f.TypeRef != "" {
		t.Errorf("Customer.createdAt: %+v", f)
	}
	if len(state.Values) != 6 || state.Values[1].Name != "CUSTOMER_STATE_PENDING" || len(state.Values[1].Description) == 0 {
		t.Errorf("CustomerState: %+v", state.Values)
	}
	if f := field(t, capability(t, "IssueApiKey").Response, "secret"); f.Sensitivity != "SECRET" {
		t.Errorf("IssueApiKey's secret: sensitivity %q", f.Sensitivity)
	}
}

// TestEveryMethodHasItsComment fails when contracts.binpb is older than the
// contracts: run scripts/generate.sh.
func TestEveryMethodHasItsComment(t *testing.T) {
	comments, err := catalog.EmbeddedComments()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries(t) {
		if comments.Of(string(e.Method.FullName())) == "" {
			t.Errorf("%s has no comment in contracts.binpb: run scripts/generate.sh", e.Method.FullName())
		}
	}
}

func TestSummaryWhenNoComment(t *testing.T) {
	// A method the descriptor set does not have.
	es := entries(t)[:1]
	es[0].Method = fakeMethod{es[0].Method}
	es[0].Summary = "Do the thing."
	c, err := catalog.Build(es)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Domains[0].Capabilities[0].Description
	if len(got) != 1 || got[0].Text != "Do the thing." {
		t.Errorf("without a comment the description is %+v, want the summary", got)
	}
}

// fakeMethod is a method whose full name no contract has.
type fakeMethod struct{ protoreflect.MethodDescriptor }

func (fakeMethod) FullName() protoreflect.FullName {
	return "plinth.nothing.v1.NoService.NoMethod"
}
func (fakeMethod) Input() protoreflect.MessageDescriptor {
	return (&emptypb.Empty{}).ProtoReflect().Descriptor()
}
func (fakeMethod) Output() protoreflect.MessageDescriptor {
	return (&emptypb.Empty{}).ProtoReflect().Descriptor()
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		capability, message, field string
		want                       []string
		required                   bool
	}{
		{"SignUpCustomer", "request", "name", []string{"1..200 chars"}, true},
		{"SignUpCustomer", "request", "email", []string{"at most 254 chars", "email"}, true},
		{"SignUpCustomer", "request", "phone", []string{"checked only when set", `matches ^\+[1-9][0-9]{6,14}$`}, false},
		{"ListCustomers", "request", "pageSize", []string{"0..200"}, false},
		{"ListCustomers", "request", "state", []string{"a value the enum defines"}, false},
		{"OpenLedgerAccount", "request", "balancePolicy", []string{"a value the enum defines", "not BALANCE_POLICY_UNSPECIFIED"}, true},
		{"OpenLedgerAccount", "request", "overdraftLimit", []string{"≥ 0"}, false},
		{"MoveMoney", "request", "legs", []string{"1..50 items"}, true},
		{"HoldFunds", "request", "amount", []string{"> 0"}, true},
		{"HoldFunds", "request", "ttl", []string{"required", "1s..30 days"}, true},
		{"IssueApiKey", "request", "expiresAt", []string{"in the future"}, false},
		{"GetCustomer", "request", "customerId", []string{"matches ^cus_[0-9A-Z]{26}$"}, true},
	} {
		c := capability(t, tc.capability)
		typ := c.Request
		if tc.message == "response" {
			typ = c.Response
		}
		f := field(t, typ, tc.field)
		if got := rules(f); !slices.Equal(got, tc.want) {
			t.Errorf("%s.%s: rules %q, want %q", tc.capability, tc.field, got, tc.want)
		}
		if f.Required != tc.required {
			t.Errorf("%s.%s: required %v, want %v", tc.capability, tc.field, f.Required, tc.required)
		}
	}
	if r := capability(t, "UpdateCustomerProfile").Request.Rules; len(r) != 1 || r[0].Text != "set at least one of name, phone, date_of_birth, address, tax_id" {
		t.Errorf("UpdateCustomerProfile's message rules: %+v", r)
	}
	if f := field(t, capability(t, "UpdateCustomerProfile").Request, "phone"); !f.Optional {
		t.Error("UpdateCustomerProfile.phone is proto3 optional")
	}
}

// get serves one request of the gateway's own handler, as mounted.
func get(t *testing.T, target string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if h := header["Host"]; h != "" {
		req.Host = h
	}
	rec := httptest.NewRecorder()
	gatewayServer(t).Handler().ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

var capabilityBlock = regexp.MustCompile(`<details class="cap" id="([^"]+)"`)

func shownIDs(page string) []string {
	var ids []string
	for _, m := range capabilityBlock.FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestPage(t *testing.T) {
	res, page := get(t, "/catalog", map[string]string{"Host": "gw.example:9000"})
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /catalog without a key: %s %s", res.Status, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	if got, want := len(shownIDs(page)), len(entries(t)); got != want {
		t.Errorf("the page shows %d capabilities, want %d", got, want)
	}
	for _, d := range []string{"customers", "ledger", "access", "audit"} {
		if !strings.Contains(page, `id="domain-`+d+`"`) {
			t.Errorf("the page has no section for the %s domain", d)
		}
	}
	// Nothing is loaded from anywhere.
	for _, bad := range []string{"<link", " src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page loads something: it contains %q", bad)
		}
	}
	if !strings.Contains(page, "curl -sS -X POST &#39;http://gw.example:9000/plinth.customers.v1.CustomerService/SignUpCustomer&#39;") {
		t.Error("the curl example does not call the host the page was asked for")
	}

	// ?q= filters on the server, for readers without JavaScript.
	_, page = get(t, "/catalog?q=signupcustomer", nil)
	if got := shownIDs(page); !slices.Equal(got, []string{"plinth.customers.v1.CustomerService.SignUpCustomer"}) {
		t.Errorf("?q=signupcustomer shows %v", got)
	}
	if !strings.Contains(page, `id="plinth.customers.v1.CustomerService.SignUpCustomer" data-search=`) || !strings.Contains(page, " open>") {
		t.Error("a search with few matches should show them open")
	}
	_, page = get(t, "/catalog?q=hold+ledger", nil)
	if got := shownIDs(page); !slices.Contains(got, "plinth.ledger.v1.LedgerService.HoldFunds") || slices.ContainsFunc(got, func(id string) bool {
		return !strings.HasPrefix(id, "plinth.ledger.")
	}) {
		t.Errorf("?q=hold+ledger shows %v", got)
	}
	_, page = get(t, "/catalog?q=nothing-matches-this", nil)
	if len(shownIDs(page)) != 0 || !strings.Contains(page, "No capability matches") {
		t.Error("a search that matches nothing should say so")
	}

	// A Host header the page cannot repeat in a shell command is not.
	_, page = get(t, "/catalog", map[string]string{"Host": "evil$(rm -rf ~)"})
	if strings.Contains(page, "rm -rf") {
		t.Error("the page repeats a Host header with shell syntax")
	}
	_, page = get(t, "/catalog?q=SignUpCustomer", map[string]string{"Host": "gw.example", "X-Forwarded-Proto": "https"})
	if !strings.Contains(page, "&#39;https://gw.example/plinth.customers.v1") {
		t.Error("X-Forwarded-Proto: https is not honoured")
	}

	res, _ = get(t, "/", nil)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/catalog" {
		t.Errorf("GET /: %s to %q, want a redirect to /catalog", res.Status, res.Header.Get("Location"))
	}
}

func TestStabilityNames(t *testing.T) {
	es := entries(t)[:1]
	es[0].Stability = optionsv1.Stability_STABILITY_PREVIEW
	es[0].Routes = []catalog.Route{{Method: "GET", Path: "/v1/customers/{id}"}}
	c, err := catalog.Build(es)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Domains[0].Capabilities[0]
	if got.Stability != "preview" || len(got.Routes) != 2 || got.Routes[1].Path != "/v1/customers/{id}" {
		t.Errorf("%s: stability %q, routes %+v", got.Name, got.Stability, got.Routes)
	}
}

// TestFirstRequestsAtOnce: the model is built once, however many requests
// come first together.
func TestFirstRequestsAtOnce(t *testing.T) {
	h := catalog.New(entries(t))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/catalog?q=customer", nil))
			if rec.Code != http.StatusOK || len(shownIDs(rec.Body.String())) == 0 {
				t.Errorf("GET /catalog?q=customer: %d", rec.Code)
			}
		})
	}
	wg.Wait()
}

// TestRESTRoutes proves that every capability has one REST route from its
// contract's google.api.http rule, that no two share a method and path,
// that the page shows them, and that the search finds a capability by its
// path.
func TestRESTRoutes(t *testing.T) {
	seen := map[string]string{}
	for _, d := range build(t).Domains {
		for _, c := range d.Capabilities {
			if len(c.Routes) != 2 {
				t.Errorf("%s: routes %+v, want its procedure and one REST route", c.Name, c.Routes)
				continue
			}
			r := c.Routes[1]
			if !strings.HasPrefix(r.Path, "/v1/") || r.Note == "" {
				t.Errorf("%s: REST route %+v", c.Name, r)
			}
			// A change of state is never a GET.
			if c.Mutates && r.Method == http.MethodGet {
				t.Errorf("%s changes state but is served on GET %s", c.Name, r.Path)
			}
			if other, dup := seen[r.Method+" "+r.Path]; dup {
				t.Errorf("%s and %s share %s %s", c.Name, other, r.Method, r.Path)
			}
			seen[r.Method+" "+r.Path] = c.Name
		}
	}
	for route, name := range map[string]string{
		"GET /v1/customers/{customer_id}":                   "GetCustomer",
		"GET /v1/customers":                                 "ListCustomers",
		"PATCH /v1/customers/{customer_id}":                 "UpdateCustomerProfile",
		"POST /v1/customers/{customer_id}:approve":          "ApproveCustomer",
		"POST /v1/customers:findByEmail":                    "FindCustomerByEmail",
		"POST /v1/ledger/accounts":                          "OpenLedgerAccount",
		"GET /v1/ledger/accounts/{account_id}/balance":      "GetBalance",
		"POST /v1/transfers":                                "MoveMoney",
		"POST /v1/transfers/{transfer_id}:reverse":          "ReverseTransfer",
		"POST /v1/holds/{hold_id}:capture":                  "CaptureHold",
		"POST /v1/principals/{principal_id}/apiKeys":        "IssueApiKey",
		"GET /v1/audit/records/{record_id}":                 "GetAuditRecord",
		"POST /v1/audit:verify":                             "VerifyAuditChain",
		"GET /v1/ledger/accounts/{account_id}/balance:asOf": "GetBalanceAt",
	} {
		if seen[route] != name {
			t.Errorf("%s serves %q, want %s", route, seen[route], name)
		}
	}

	_, page := get(t, "/catalog?q=MoveMoney", nil)
	if !strings.Contains(page, "<code>POST /v1/transfers</code>") || !strings.Contains(page, `<code class="rest-curl">`) {
		t.Error("the page does not show MoveMoney's REST route and its REST example")
	}
	_, page = get(t, "/catalog?q=/v1/transfers/", nil)
	if got := shownIDs(page); !slices.Contains(got, "plinth.ledger.v1.LedgerService.GetTransfer") || slices.Contains(got, "plinth.ledger.v1.LedgerService.MoveMoney") {
		t.Errorf("?q=/v1/transfers/ shows %v", got)
	}
}

func TestRESTCurl(t *testing.T) {
	for name, want := range map[string]string{
		"SignUpCustomer": `curl -sS -X POST 'http://h/v1/customers' \
  -H "Authorization: Bearer $PLINTH_API_KEY" \
  -H 'Content-Type: application/json' \
  -H "Idempotency-Key: catalog-$(date +%s)-$$" \
  -d '{"name":"Ada Lovelace","email":"ada@example.com"}'`,
		"GetCustomer": `curl -sS -X GET 'http://h/v1/customers/cus_00000000000000000000000000' \
  -H "Authorization: Bearer $PLINTH_API_KEY"`,
		"UpdateCustomerProfile": `curl -sS -X PATCH 'http://h/v1/customers/cus_00000000000000000000000000' \
  -H "Authorization: Bearer $PLINTH_API_KEY" \
  -H 'Content-Type: application/json' \
  -H "Idempotency-Key: catalog-$(date +%s)-$$" \
  -d '{"name":"Ada Lovelace"}'`,
		"ApproveCustomer": `curl -sS -X POST 'http://h/v1/customers/cus_00000000000000000000000000:approve' \
  -H "Authorization: Bearer $PLINTH_API_KEY" \
  -H 'Content-Type: application/json' \
  -H "Idempotency-Key: catalog-$(date +%s)-$$" \
  -d '{}'`,
		"VerifyAuditChain": `curl -sS -X POST 'http://h/v1/audit:verify' \
  -H "Authorization: Bearer $PLINTH_API_KEY" \
  -H 'Content-Type: application/json' \
  -d '{}'`,
	} {
		if got := catalog.RESTCurl("http://h", capability(t, name)); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	// A GET's other fields go in the query string.
	got := catalog.RESTCurl("http://h", capability(t, "GetBalanceAt"))
	if !regexp.MustCompile(`^curl -sS -X GET 'http://h/v1/ledger/accounts/lac_0{26}/balance:asOf\?at=[0-9T:.%A-Z-]+' \\`).MatchString(got) {
		t.Errorf("GetBalanceAt:\n%s", got)
	}
	// Every capability with an example has a REST example.
	for _, d := range build(t).Domains {
		for _, c := range d.Capabilities {
			if c.Example != nil && catalog.RESTCurl("http://h", c) == "" {
				t.Errorf("%s has no REST example", c.Name)
			}
		}
	}
	// A route whose variable names no field of the example has none.
	odd := *capability(t, "GetCustomer")
	odd.Routes = []catalog.Route{odd.Routes[0], {Method: "GET", Path: "/v1/customers/{id}"}}
	if got := catalog.RESTCurl("http://h", &odd); got != "" {
		t.Errorf("a route with an unknown variable: %s", got)
	}
}
