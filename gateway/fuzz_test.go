package gateway_test

// Hostile input through the real gateway: FuzzGatewayJSON and
// FuzzGatewayProto POST arbitrary bodies, as Connect JSON and as Connect
// binary, to a handful of capabilities of a gateway over memory backends,
// with a valid admin API key, and check that
//
//   - nothing crashes: no answer is Internal (what the recover interceptor
//     makes of a panic), Unknown or an HTTP 500, and nothing is logged at
//     ERROR or mentions a panic (a panic's stack, a failed validation rule);
//   - every refusal is a well-formed Connect error: JSON with a known code;
//     every success decodes as the capability's response;
//   - nothing unvalidated reaches a backend: the customers and ledger
//     backends are observed, and a request that reached one must decode,
//     as the gateway decodes it, into a message that passes the contract's
//     protovalidate rules.
//
// Run one for a while with scripts/fuzz.sh, or:
//
//	go test ./gateway -run '^$' -fuzz '^FuzzGatewayJSON$' -fuzztime 30s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"plinth.dev/plinth/capabilities/customers"
	customersmemory "plinth.dev/plinth/capabilities/customers/memory"
	"plinth.dev/plinth/capabilities/ledger"
	ledgermemory "plinth.dev/plinth/capabilities/ledger/memory"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway"
	"plinth.dev/plinth/gateway/idempotency"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

// Ids that exist in the fuzzed gateway's backends from the start (made by
// the testfuzz backends), so that seeds can name them and valid
// requests get as far as the backend.
const (
	fuzzCustomerID   = "cus_01ARZ3NDEKTSV4RRFFQ69G5FA0"
	fuzzSettlementID = "lac_01ARZ3NDEKTSV4RRFFQ69G5FA1"
	fuzzAccountID    = "lac_01ARZ3NDEKTSV4RRFFQ69G5FA2"
)

// fuzzProcedures are the capabilities the gateway targets call; the first
// fuzz argument picks one (modulo their number).
var fuzzProcedures = []protoreflect.MethodDescriptor{
	customersv1.File_plinth_customers_v1_customers_proto.Services().ByName("CustomerService").Methods().ByName("SignUpCustomer"),
	customersv1.File_plinth_customers_v1_customers_proto.Services().ByName("CustomerService").Methods().ByName("ListCustomers"),
	customersv1.File_plinth_customers_v1_customers_proto.Services().ByName("CustomerService").Methods().ByName("UpdateCustomerProfile"),
	ledgerv1.File_plinth_ledger_v1_ledger_proto.Services().ByName("LedgerService").Methods().ByName("OpenLedgerAccount"),
	ledgerv1.File_plinth_ledger_v1_ledger_proto.Services().ByName("LedgerService").Methods().ByName("MoveMoney"),
	ledgerv1.File_plinth_ledger_v1_ledger_proto.Services().ByName("LedgerService").Methods().ByName("ListTransfers"),
	ledgerv1.File_plinth_ledger_v1_ledger_proto.Services().ByName("LedgerService").Methods().ByName("HoldFunds"),
}

// fuzzSeeds are valid requests, one or more per procedure (by index), that
// reach the backend; the targets add them in both encodings, and a few
// broken variants of each.
var fuzzSeeds = []struct {
	procedure int
	msg       proto.Message
}{
	{0, &customersv1.SignUpCustomerRequest{Name: "Ada Lovelace", Email: "ada@example.com"}},
	{0, &customersv1.SignUpCustomerRequest{Name: "Grace Hopper", Email: "grace@example.com", Phone: "+15555550100", DateOfBirth: "1906-12-09",
		Address: &customersv1.Address{Line1: "1 Navy Way", City: "Arlington", PostalCode: "22201", CountryCode: "US"}, TaxId: "123-45-6789"}},
	{1, &customersv1.ListCustomersRequest{PageSize: 5, State: customersv1.CustomerState_CUSTOMER_STATE_PENDING}},
	{1, &customersv1.ListCustomersRequest{PageToken: "AgAAAAAAAAAAAGN1c18xAAAAAAAAAAAAAAAAAAAAAAA"}},
	{2, &customersv1.UpdateCustomerProfileRequest{CustomerId: fuzzCustomerID, Name: proto.String("Ada King")}},
	{3, &ledgerv1.OpenLedgerAccountRequest{Currency: "USD", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, OverdraftLimit: 100}},
	{4, &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{{FromAccountId: fuzzSettlementID, ToAccountId: fuzzAccountID, Amount: 1050}}}},
	{4, &ledgerv1.MoveMoneyRequest{Currency: "USD", Description: "two legs", Legs: []*ledgerv1.Leg{
		{FromAccountId: fuzzSettlementID, ToAccountId: fuzzAccountID, Amount: 9223372036854775807},
		{FromAccountId: fuzzAccountID, ToAccountId: fuzzSettlementID, Amount: 1}}}},
	{5, &ledgerv1.ListTransfersRequest{AccountId: fuzzAccountID, PageSize: 2}},
	{6, &ledgerv1.HoldFundsRequest{AccountId: fuzzAccountID, Amount: 10, Ttl: durationpb.New(time.Hour)}},
}

// fuzzReached counts the calls that reached an observed backend since the
// last reset. The fuzz function runs one input at a time in each process.
type fuzzReached struct{ n atomic.Int64 }

func (r *fuzzReached) hit() {
	if r != nil {
		r.n.Add(1)
	}
}

type fuzzReachedKey struct{}

// The observed backends: memory stores whose every call is counted, and
// which hold fuzzCustomerID, fuzzSettlementID and fuzzAccountID from the
// start.
func init() {
	registry.RegisterBackend(registry.Backend{Domain: "customers", Name: "testfuzz",
		Open: func(ctx context.Context, _ registry.Env) (any, error) {
			s := observedCustomers{Store: customersmemory.New(), r: ctx.Value(fuzzReachedKey{}).(*fuzzReached)}
			now := time.Now().UTC().Truncate(time.Microsecond)
			err := s.Store.Create(ctx, customers.Customer{ID: fuzzCustomerID, State: customers.StatePending,
				Email: "seed@example.com", EmailKey: "seed@example.com", Profile: customers.Profile{Name: "Seed"},
				CreatedAt: now, UpdatedAt: now})
			return s, err
		}})
	registry.RegisterBackend(registry.Backend{Domain: "ledger", Name: "testfuzz",
		Open: func(ctx context.Context, _ registry.Env) (any, error) {
			s := observedLedger{Store: ledgermemory.New(), r: ctx.Value(fuzzReachedKey{}).(*fuzzReached)}
			now := time.Now().UTC().Truncate(time.Microsecond)
			for _, a := range []ledger.Account{
				{ID: fuzzSettlementID, Currency: "USD", Policy: ledger.PolicyUnrestricted, State: ledger.AccountOpen, CreatedAt: now, UpdatedAt: now},
				{ID: fuzzAccountID, Currency: "USD", Policy: ledger.PolicyNonNegative, State: ledger.AccountOpen, CreatedAt: now, UpdatedAt: now},
			} {
				if err := s.Store.CreateAccount(ctx, a); err != nil {
					return nil, err
				}
			}
			return s, nil
		}})
}

type observedCustomers struct {
	customers.Store
	r *fuzzReached
}

func (s observedCustomers) Create(ctx context.Context, c customers.Customer) error {
	s.r.hit()
	return s.Store.Create(ctx, c)
}

func (s observedCustomers) Get(ctx context.Context, id string) (customers.Customer, error) {
	s.r.hit()
	return s.Store.Get(ctx, id)
}

func (s observedCustomers) GetByEmailKey(ctx context.Context, key string) (customers.Customer, error) {
	s.r.hit()
	return s.Store.GetByEmailKey(ctx, key)
}

func (s observedCustomers) List(ctx context.Context, q customers.ListQuery) ([]customers.Customer, error) {
	s.r.hit()
	return s.Store.List(ctx, q)
}

func (s observedCustomers) Update(ctx context.Context, id string, change func(*customers.Customer) error) (customers.Customer, error) {
	s.r.hit()
	return s.Store.Update(ctx, id, change)
}

type observedLedger struct {
	ledger.Store
	r *fuzzReached
}

func (s observedLedger) CreateAccount(ctx context.Context, a ledger.Account) error {
	s.r.hit()
	return s.Store.CreateAccount(ctx, a)
}

func (s observedLedger) GetAccount(ctx context.Context, id string, now time.Time) (ledger.Account, int64, error) {
	s.r.hit()
	return s.Store.GetAccount(ctx, id, now)
}

func (s observedLedger) ListAccounts(ctx context.Context, q ledger.AccountQuery, now time.Time) ([]ledger.AccountWithHeld, error) {
	s.r.hit()
	return s.Store.ListAccounts(ctx, q, now)
}

func (s observedLedger) GetTransfer(ctx context.Context, id string) (ledger.Transfer, error) {
	s.r.hit()
	return s.Store.GetTransfer(ctx, id)
}

func (s observedLedger) ListTransfers(ctx context.Context, q ledger.TransferQuery) ([]ledger.Transfer, error) {
	s.r.hit()
	return s.Store.ListTransfers(ctx, q)
}

func (s observedLedger) GetHold(ctx context.Context, id string) (ledger.Hold, error) {
	s.r.hit()
	return s.Store.GetHold(ctx, id)
}

func (s observedLedger) ListEntries(ctx context.Context, q ledger.EntryQuery) ([]ledger.Entry, error) {
	s.r.hit()
	return s.Store.ListEntries(ctx, q)
}

func (s observedLedger) BalanceAt(ctx context.Context, accountID string, at time.Time) (int64, error) {
	s.r.hit()
	return s.Store.BalanceAt(ctx, accountID, at)
}

func (s observedLedger) Apply(ctx context.Context, l ledger.Lock, change func(ledger.Tx) error) error {
	s.r.hit()
	return s.Store.Apply(ctx, l, change)
}

var (
	_ customers.Store = observedCustomers{}
	_ ledger.Store    = observedLedger{}
)

// fuzzLog keeps what the gateway logged since the last reset.
type fuzzLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *fuzzLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *fuzzLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *fuzzLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// fuzzGateway is a gateway over the observed backends, called through its
// handler (no network), with what the checks need.
type fuzzGateway struct {
	handler   http.Handler
	key       string
	reached   *fuzzReached
	logs      *fuzzLog
	validator protovalidate.Validator
	seq       atomic.Int64 // numbers idempotency keys
	mu        sync.Mutex   // one request at a time: reached and logs are per request
}

func newFuzzGateway(f testing.TB) *fuzzGateway {
	f.Helper()
	cfg := testConfig()
	cfg.Backends["customers"] = "testfuzz"
	cfg.Backends["ledger"] = "testfuzz"
	g := &fuzzGateway{reached: &fuzzReached{}, logs: &fuzzLog{}}
	ctx := context.WithValue(context.Background(), fuzzReachedKey{}, g.reached)
	// WARN and above only: a fuzz run makes many calls. What the checks
	// look for is logged at ERROR.
	log := slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := gateway.New(ctx, cfg, log)
	if err != nil {
		f.Fatalf("gateway.New: %v", err)
	}
	f.Cleanup(func() { srv.Close() })
	if g.key, err = srv.Bootstrap(ctx); err != nil || g.key == "" {
		f.Fatalf("Bootstrap = %q, %v", g.key, err)
	}
	g.handler = srv.Handler()
	if g.validator, err = protovalidate.New(); err != nil {
		f.Fatal(err)
	}
	return g
}

// call POSTs body to the procedure picked by which, in the encoding of
// contentType, and checks the answer; it fails t on any finding. It
// returns the HTTP status and whether the request reached a backend.
func (g *fuzzGateway) call(t *testing.T, which uint8, contentType string, body []byte) (status int, reached bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	method := fuzzProcedures[int(which)%len(fuzzProcedures)]
	procedure := "/" + string(method.Parent().FullName()) + "/" + string(method.Name())

	g.reached.n.Store(0)
	g.logs.reset()
	req := httptest.NewRequest(http.MethodPost, procedure, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set(idempotency.Header, fmt.Sprintf("fuzz-%d", g.seq.Add(1)))
	rec := httptest.NewRecorder()
	g.handler.ServeHTTP(rec, req)
	res := rec.Result()
	answer := rec.Body.Bytes()

	if logged := g.logs.String(); strings.Contains(logged, `"level":"ERROR"`) || strings.Contains(logged, "panic") {
		t.Fatalf("%s with %q logged an error:\n%s", procedure, body, logged)
	}
	if res.StatusCode == http.StatusInternalServerError {
		t.Fatalf("%s with %q: HTTP %d: %s", procedure, body, res.StatusCode, answer)
	}
	if res.StatusCode == http.StatusOK {
		if got := res.Header.Get("Content-Type"); got != contentType {
			t.Fatalf("%s with %q: a success of content type %q, want %q", procedure, body, got, contentType)
		}
		out := newMessage(t, method.Output())
		if err := unmarshal(contentType, answer, out); err != nil {
			t.Fatalf("%s with %q: the success does not decode as %s: %v", procedure, body, method.Output().FullName(), err)
		}
	} else {
		var e struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Details []json.RawMessage `json:"details"`
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s with %q: HTTP %d of content type %q, want a Connect error (application/json): %s", procedure, body, res.StatusCode, ct, answer)
		}
		if err := json.Unmarshal(answer, &e); err != nil {
			t.Fatalf("%s with %q: HTTP %d with a body that is not a Connect error: %v: %s", procedure, body, res.StatusCode, err, answer)
		}
		var code connect.Code
		if err := code.UnmarshalText([]byte(e.Code)); err != nil {
			t.Fatalf("%s with %q: HTTP %d with an unknown code %q", procedure, body, res.StatusCode, e.Code)
		}
		switch code {
		case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss, connect.CodeUnauthenticated, connect.CodePermissionDenied:
			t.Fatalf("%s with %q: %s: %s", procedure, body, code, e.Message)
		}
	}

	// Whatever reached a backend passed the contract's rules.
	if g.reached.n.Load() > 0 {
		in := newMessage(t, method.Input())
		if err := unmarshal(contentType, body, in); err != nil {
			t.Fatalf("%s with %q reached the backend, but the body does not decode: %v", procedure, body, err)
		}
		if err := g.validator.Validate(in); err != nil {
			t.Fatalf("%s with %q reached the backend, but breaks the contract: %v", procedure, body, err)
		}
	}
	return res.StatusCode, g.reached.n.Load() > 0
}

func newMessage(t *testing.T, desc protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(desc.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// unmarshal decodes as the gateway's Connect codecs do.
func unmarshal(contentType string, data []byte, m proto.Message) error {
	if contentType == "application/proto" {
		return proto.Unmarshal(data, m)
	}
	if len(data) == 0 {
		return fmt.Errorf("zero-length payload is not a valid JSON object")
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}

// TestFuzzSeedsReachTheBackend keeps the fuzz targets honest: their valid
// seeds are served and reach the observed backends, so the check that
// nothing unvalidated reaches a backend is not vacuous.
func TestFuzzSeedsReachTheBackend(t *testing.T) {
	g := newFuzzGateway(t)
	for i, s := range fuzzSeeds {
		if lc, ok := s.msg.(*customersv1.ListCustomersRequest); ok && lc.GetPageToken() != "" {
			continue // a token this gateway did not issue: refused before the backend
		}
		j, err := protojson.Marshal(s.msg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(s.msg)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			contentType string
			body        []byte
		}{{"application/json", j}, {"application/proto", b}} {
			status, reached := g.call(t, uint8(s.procedure), c.contentType, c.body)
			if !reached {
				t.Errorf("seed %d (%s) did not reach the backend: HTTP %d", i, c.contentType, status)
			}
		}
	}
	// And an invalid request does not.
	if status, reached := g.call(t, 4, "application/json", []byte(`{"currency": "usd", "legs": [{"fromAccountId": "`+fuzzSettlementID+`", "toAccountId": "`+fuzzAccountID+`", "amount": 0}]}`)); reached || status != http.StatusBadRequest {
		t.Errorf("an invalid MoveMoney: HTTP %d, reached the backend: %v", status, reached)
	}
}

// FuzzGatewayJSON posts arbitrary Connect JSON bodies.
func FuzzGatewayJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		b, err := protojson.Marshal(s.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(s.procedure), b)
		f.Add(uint8(s.procedure), b[:len(b)/2])
	}
	for p := range fuzzProcedures {
		for _, b := range []string{``, `{}`, `null`, `[]`, `{"pageSize": -1}`, `{"name": "\u0000"}`, `{"legs": [{}]}`,
			`{"currency": "USD", "legs": [{"amount": "9223372036854775808"}]}`, `{"state": 99}`, `{"state": "NOPE"}`,
			`{"address": {"countryCode": "` + strings.Repeat("Z", 300) + `"}}`, `{"email": "a@b", "name": 1e999}`} {
			f.Add(uint8(p), []byte(b))
		}
	}
	g := newFuzzGateway(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		g.call(t, which, "application/json", body)
	})
}

// FuzzGatewayProto posts arbitrary Connect binary (protobuf) bodies.
func FuzzGatewayProto(f *testing.F) {
	for _, s := range fuzzSeeds {
		b, err := proto.Marshal(s.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(s.procedure), b)
		f.Add(uint8(s.procedure), b[:len(b)/2])
		f.Add(uint8(s.procedure), append(b, 0xff, 0xff, 0xff, 0xff, 0x0f))
	}
	for p := range fuzzProcedures {
		for _, b := range [][]byte{nil, {0x00}, {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, {0x12, 0x02, 0xc3, 0x28}, {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}} {
			f.Add(uint8(p), b)
		}
	}
	g := newFuzzGateway(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		g.call(t, which, "application/proto", body)
	})
}

// TestPageTokensAcrossGateways: page tokens are signed with the
// deployment's key, derived from its keyring. Gateway B, sharing gateway
// A's keyring (the local key file), accepts A's tokens, for the domains
// mounted from the registry (customers) and for the access domain the
// gateway keeps itself; a gateway of another deployment (another key file)
// refuses them, and so does a dev gateway (no keyring, a key of its own).
func TestPageTokensAcrossGateways(t *testing.T) {
	keyFile := t.TempDir() + "/keys.json"
	withKeyring := func(file string) serverOption {
		return withConfig(func(cfg *gateway.Config) {
			cfg.Keyring.Backend = "local"
			cfg.Keyring.KeyFile = file
		})
	}
	a := startServer(t, withKeyring(keyFile))
	b := startServer(t, withKeyring(keyFile))
	other := startServer(t, withKeyring(t.TempDir()+"/keys.json"))
	dev := startServer(t)

	type tokens struct{ customers, principals string }
	issue := func(ts *testServer) tokens {
		t.Helper()
		c := ts.client()
		signUp(t, c, "Ada Lovelace", "ada@example.com")
		signUp(t, c, "Grace Hopper", "grace@example.com")
		cl, err := c.ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 1}))
		if err != nil || cl.Msg.GetNextPageToken() == "" {
			t.Fatalf("ListCustomers: %v, %v", cl, err)
		}
		admin := accessv1connect.NewAccessServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key), plinth.WithIdempotencyKeys())
		if _, err := admin.CreatePrincipal(t.Context(), connect.NewRequest(&accessv1.CreatePrincipalRequest{Name: "payroll"})); err != nil {
			t.Fatal(err)
		}
		pl, err := admin.ListPrincipals(t.Context(), connect.NewRequest(&accessv1.ListPrincipalsRequest{PageSize: 1}))
		if err != nil || pl.Msg.GetNextPageToken() == "" {
			t.Fatalf("ListPrincipals: %v, %v", pl, err)
		}
		return tokens{cl.Msg.GetNextPageToken(), pl.Msg.GetNextPageToken()}
	}
	use := func(ts *testServer, tok tokens) (customersErr, principalsErr error) {
		t.Helper()
		_, customersErr = ts.client().ListCustomers(t.Context(), connect.NewRequest(&customersv1.ListCustomersRequest{PageSize: 1, PageToken: tok.customers}))
		admin := accessv1connect.NewAccessServiceClient(ts.h1, ts.URL, plinth.WithAPIKey(ts.key))
		_, principalsErr = admin.ListPrincipals(t.Context(), connect.NewRequest(&accessv1.ListPrincipalsRequest{PageSize: 1, PageToken: tok.principals}))
		return customersErr, principalsErr
	}
	fromA := issue(a)
	for _, ts := range []*testServer{b, other, dev} {
		issue(ts) // each has customers and principals of its own to page through
	}
	if ce, pe := use(b, fromA); ce != nil || pe != nil {
		t.Fatalf("gateway B of the same deployment refused gateway A's tokens: %v, %v", ce, pe)
	}
	for name, ts := range map[string]*testServer{"another deployment": other, "a dev gateway": dev} {
		ce, pe := use(ts, fromA)
		for _, err := range []error{ce, pe} {
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "page_token") {
				t.Errorf("%s: gateway A's token = %v, want invalid_argument on page_token", name, err)
			}
		}
	}
}
