package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/gateway"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/plinth"
)

// withSupportRole configures a role that may read customers and nothing
// else.
func withSupportRole() serverOption {
	return withConfig(func(cfg *gateway.Config) {
		cfg.Auth.Roles = map[string]gateway.RoleConfig{"support": {Scopes: []string{"customers.read"}, Reveal: []string{"pii"}}}
	})
}

// newPrincipal creates a principal with roles, as the admin, and returns
// its id and a key for it.
func newPrincipal(t *testing.T, ts *testServer, name string, roles ...string) (string, string, accessv1connect.AccessServiceClient) {
	t.Helper()
	admin := accessv1connect.NewAccessServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key), plinth.WithIdempotencyKeys())
	p, err := admin.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	id := p.Msg.GetPrincipal().GetId()
	for _, r := range roles {
		if _, err := admin.GrantRole(t.Context(), connect.NewRequest(&accessv1.GrantRoleRequest{PrincipalId: id, Role: r})); err != nil {
			t.Fatal(err)
		}
	}
	k, err := admin.IssueApiKey(t.Context(), connect.NewRequest(&accessv1.IssueApiKeyRequest{PrincipalId: id}))
	if err != nil {
		t.Fatal(err)
	}
	return id, k.Msg.GetSecret(), admin
}

func customersAs(ts *testServer, key string, opts ...connect.ClientOption) customersv1connect.CustomerServiceClient {
	return customersv1connect.NewCustomerServiceClient(ts.h1, ts.URL, append([]connect.ClientOption{plinth.WithAPIKey(key), plinth.WithIdempotencyKeys()}, opts...)...)
}

// TestAuthentication proves that every capability call needs a valid API
// key, and that every refusal looks the same.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSupportRole())
	_, key, admin := newPrincipal(t, ts, "payroll-app", "support")

	noKey := customersv1connect.NewCustomerServiceClient(ts.h1, ts.URL)
	_, err := noKey.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	want := connectError(t, err, connect.CodeUnauthenticated).Message()

	prefix := key[:strings.LastIndex(key, "_")]
	for name, presented := range map[string]string{
		"garbage":         "not-a-key",
		"unknown prefix":  "plk_zzzzzzzz_" + strings.Repeat("A", 43),
		"wrong secret":    prefix + "_" + strings.Repeat("A", 43),
		"truncated":       key[:len(key)-1],
		"grpc, no bearer": "",
	} {
		c := customersAs(ts, presented)
		if name == "grpc, no bearer" {
			c = customersv1connect.NewCustomerServiceClient(ts.h2c, ts.URL, connect.WithGRPC())
		}
		_, err := c.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
		if got := connectError(t, err, connect.CodeUnauthenticated).Message(); got != want {
			t.Errorf("%s: message %q, want the same as every refusal: %q", name, got, want)
		}
	}
	if _, err := customersAs(ts, key).ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatalf("a valid key: %v", err)
	}

	// A revoked key is refused from the next call on.
	keys, err := admin.ListApiKeys(t.Context(), connect.NewRequest(&accessv1.ListApiKeysRequest{PrincipalId: principalOf(t, ts, admin, "payroll-app")}))
	if err != nil || len(keys.Msg.GetApiKeys()) != 1 {
		t.Fatalf("ListApiKeys: %v, %v", keys, err)
	}
	if _, err := admin.RevokeApiKey(t.Context(), connect.NewRequest(&accessv1.RevokeApiKeyRequest{ApiKeyId: keys.Msg.GetApiKeys()[0].GetId()})); err != nil {
		t.Fatal(err)
	}
	_, err = customersAs(ts, key).ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	if got := connectError(t, err, connect.CodeUnauthenticated).Message(); got != want {
		t.Errorf("revoked key: message %q, want %q", got, want)
	}

	// What operators and load balancers probe needs no key.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if res, _ := ts.get(t, path); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a key: %s", path, res.Status)
		}
	}
	if strings.Contains(ts.logs.String(), key) {
		t.Error("the log holds an API key")
	}
}

func principalOf(t *testing.T, ts *testServer, admin accessv1connect.AccessServiceClient, name string) string {
	t.Helper()
	res, err := admin.ListPrincipals(t.Context(), connect.NewRequest(&accessv1.ListPrincipalsRequest{PageSize: 200}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Msg.GetPrincipals() {
		if p.GetName() == name {
			return p.GetId()
		}
	}
	t.Fatalf("no principal %s", name)
	return ""
}

// TestAuthorization proves that a call needs the scope its contract
// declares, granted by one of the caller's roles.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSupportRole())
	_, supportKey, _ := newPrincipal(t, ts, "support-console", "support")
	_, nobodyKey, _ := newPrincipal(t, ts, "nobody")

	if _, err := customersAs(ts, supportKey).ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{})); err != nil {
		t.Fatalf("support may read customers: %v", err)
	}
	_, err := customersAs(ts, supportKey).SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{Name: "X", Email: "x@example.com"}))
	ce := connectError(t, err, connect.CodePermissionDenied)
	if !strings.Contains(ce.Message(), `"customers.write"`) || !strings.Contains(ce.Message(), "support-console") {
		t.Errorf("message %q should name the principal and the scope it lacks", ce.Message())
	}
	_, err = customersAs(ts, nobodyKey).ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	connectError(t, err, connect.CodePermissionDenied)

	// Granting a role the configuration does not define is refused.
	admin := accessv1connect.NewAccessServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key), plinth.WithIdempotencyKeys())
	_, err = admin.GrantRole(t.Context(), connect.NewRequest(&accessv1.GrantRoleRequest{PrincipalId: principalOf(t, ts, admin, "nobody"), Role: "superuser"}))
	if err == nil {
		t.Error("granting an undefined role succeeded")
	}
}

// TestIdempotencyKeysAreScopedToTheCaller proves that two principals using
// the same key string do not see each other's answers.
func TestIdempotencyKeysAreScopedToTheCaller(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	_, otherKey, _ := newPrincipal(t, ts, "other-app", gateway.AdminRole)
	a, err := signUpWithKey(t, ts, customersAs(ts, ts.key), "shared-key", "Ada", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, err := signUpWithKey(t, ts, customersAs(ts, otherKey), "shared-key", "Bea", "bea@example.com")
	if err != nil {
		t.Fatalf("another principal's call with the same key string: %v", err)
	}
	if a.Msg.GetCustomer().GetId() == b.Msg.GetCustomer().GetId() {
		t.Error("another principal got the first principal's answer")
	}
}

func TestRolesAreCheckedAtStartup(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		roles map[string]gateway.RoleConfig
		want  string
	}{
		"unknown scope":   {map[string]gateway.RoleConfig{"r": {Scopes: []string{"customers.delete"}}}, `unknown scope "customers.delete"`},
		"unknown class":   {map[string]gateway.RoleConfig{"r": {Reveal: []string{"ssn"}}}, `unknown class "ssn"`},
		"admin redefined": {map[string]gateway.RoleConfig{"admin": {}}, "built in"},
	} {
		cfg := testConfig()
		cfg.Auth.Roles = tc.roles
		_, err := gateway.New(context.Background(), cfg, discardLogger())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error saying %s", name, err, tc.want)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestAPIKeySecretIsShownOnce proves that a new key's secret is neither
// logged (even at debug level) nor kept by the idempotency layer: a retry
// gets the key's metadata without it.
func TestAPIKeySecretIsShownOnce(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLogLevel(slog.LevelDebug))
	id, _, admin := newPrincipal(t, ts, "billing-app")
	issue := func() *connect.Response[accessv1.IssueApiKeyResponse] {
		req := connect.NewRequest(&accessv1.IssueApiKeyRequest{PrincipalId: id, Description: "retried"})
		req.Header().Set("Idempotency-Key", "issue-once-1")
		res, err := admin.IssueApiKey(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := issue()
	secret := first.Msg.GetSecret()
	if !strings.HasPrefix(secret, "plk_") {
		t.Fatalf("first answer's secret %q", secret)
	}
	again := issue()
	if again.Msg.GetApiKey().GetId() != first.Msg.GetApiKey().GetId() || again.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %v, want the first key, replayed", again.Msg)
	}
	if again.Msg.GetSecret() != "" {
		t.Error("a replayed answer holds the secret: the idempotency record kept it")
	}
	if strings.Contains(ts.logs.String(), secret) || strings.Contains(ts.logs.String(), ts.key) {
		t.Error("the debug log holds an API key")
	}
}

// TestMaskingAndReveal proves that a caller without the right to reveal PII
// sees masks that fit each field, one with it sees the values, and the
// access log says what was revealed, never the values.
func TestMaskingAndReveal(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withConfig(func(cfg *gateway.Config) {
		cfg.Auth.Roles = map[string]gateway.RoleConfig{
			"support": {Scopes: []string{"customers.read"}, Reveal: []string{"pii"}},
			"reader":  {Scopes: []string{"customers.read"}},
		}
	}))
	_, supportKey, _ := newPrincipal(t, ts, "support-console", "support")
	_, readerKey, _ := newPrincipal(t, ts, "analytics", "reader")
	signed, err := ts.client().SignUpCustomer(t.Context(), connect.NewRequest(&customersv1.SignUpCustomerRequest{
		Name: "Ada Lovelace", Email: "ada@example.com", TaxId: "123-45-6789", Phone: "+14155550100",
	}))
	if err != nil {
		t.Fatal(err)
	}
	id := signed.Msg.GetCustomer().GetId()
	get := func(key string) *customersv1.Customer {
		t.Helper()
		req := connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: id})
		req.Header().Set(gateway.RequestIDHeader, "get-as-"+key[4:12])
		res, err := customersAs(ts, key).GetCustomer(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetCustomer()
	}
	masked := get(readerKey)
	if masked.GetName() != "****" || masked.GetEmail() != "***@example.com" || masked.GetTaxId() != "****6789" || masked.GetPhone() != "****0100" {
		t.Errorf("a caller without reveal got %v, want masks", masked)
	}
	if masked.GetId() != id {
		t.Errorf("masking changed the id: %q", masked.GetId())
	}
	shown := get(supportKey)
	if shown.GetName() != "Ada Lovelace" || shown.GetTaxId() != "123-45-6789" {
		t.Errorf("a caller with reveal got %v, want the values", shown)
	}
	if line := ts.accessLog(t, "get-as-"+supportKey[4:12]); line.str("revealed") != "pii" {
		t.Errorf("access log of a reveal: %v, want revealed=pii", line)
	}
	if line := ts.accessLog(t, "get-as-"+readerKey[4:12]); line.str("revealed") != "" {
		t.Errorf("access log of a masked answer: %v, want nothing revealed", line)
	}
}

// TestEveryCallIsAudited proves that each capability call, refused or not,
// leaves a record in the chain with its principal, code, resources and
// what it revealed, and that the chain verifies.
func TestEveryCallIsAudited(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSupportRole())
	supportID, supportKey, _ := newPrincipal(t, ts, "support-console", "support")
	signed := signUp(t, ts.client(), "Ada Lovelace", "ada@example.com")
	if _, err := customersAs(ts, supportKey).GetCustomer(t.Context(), connect.NewRequest(&customersv1.GetCustomerRequest{CustomerId: signed.GetId()})); err != nil {
		t.Fatal(err)
	}
	_, err := customersAs(ts, supportKey).CloseCustomer(t.Context(), connect.NewRequest(&customersv1.CloseCustomerRequest{CustomerId: signed.GetId()}))
	connectError(t, err, connect.CodePermissionDenied)
	_, err = customersAs(ts, "plk_nope").ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{}))
	connectError(t, err, connect.CodeUnauthenticated)

	auditor := auditv1connect.NewAuditServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key))
	list, err := auditor.ListAuditRecords(t.Context(), connect.NewRequest(&auditv1.ListAuditRecordsRequest{PageSize: 200}))
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ principal, code string }
	var got []seen
	var revealedByGet bool
	for _, r := range list.Msg.GetAuditRecords() {
		if strings.HasSuffix(r.GetCapability(), "/GetCustomer") || strings.HasSuffix(r.GetCapability(), "/CloseCustomer") || strings.HasSuffix(r.GetCapability(), "/ListCustomers") {
			got = append(got, seen{r.GetPrincipalId(), r.GetCode()})
		}
		if strings.HasSuffix(r.GetCapability(), "/GetCustomer") {
			revealedByGet = slices.Equal(r.GetRevealed(), []string{"pii"}) && slices.Contains(r.GetResourceIds(), signed.GetId())
		}
	}
	want := []seen{{supportID, "ok"}, {supportID, "permission_denied"}, {"", "unauthenticated"}}
	if !slices.Equal(got, want) {
		t.Errorf("audited calls %v, want %v", got, want)
	}
	if !revealedByGet {
		t.Error("the audit of GetCustomer does not show the PII it revealed and the customer it touched")
	}
	v, err := auditor.VerifyAuditChain(t.Context(), connect.NewRequest(&auditv1.VerifyAuditChainRequest{}))
	if err != nil || !v.Msg.GetOk() || v.Msg.GetRecordsChecked() < int64(len(list.Msg.GetAuditRecords())) {
		t.Errorf("VerifyAuditChain = %v, %v; want ok over every record", v, err)
	}
}
