package plinth_test

// A fake gateway for the tests and examples: the generated Connect
// handlers of every domain over small in-memory fakes, behind a server
// interceptor that records each call's headers and can fail calls on
// demand. Its errors are built the way Plinth's gateway builds them: a
// buf.validate.Violations detail for a request that breaks the contract,
// a google.rpc.ErrorInfo detail (domain "plinth.dev") for a refusal with a
// reason.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/resources/v1/resourcesv1connect"
)

// call is what the fake saw of one call.
type call struct {
	Procedure      string
	IdempotencyKey string
	Authorization  string
	UserAgent      string
	Request        proto.Message
}

type fakeGateway struct {
	*httptest.Server

	mu       sync.Mutex
	calls    []call
	failures map[string][]error // per procedure, returned by the next calls in order
	// onCall, if set (under mu), runs at the start of every call.
	onCall func(procedure string)

	customers []*customersv1.Customer
	accounts  []*ledgerv1.LedgerAccount
	transfers []*ledgerv1.Transfer
	entries   []*ledgerv1.Entry
}

// newFakeGateway starts a fake gateway; Close stops it.
func newFakeGateway() *fakeGateway {
	g := &fakeGateway{failures: map[string][]error{}}
	opts := connect.WithInterceptors(recorder{g})
	mux := http.NewServeMux()
	mux.Handle(customersv1connect.NewCustomerServiceHandler(fakeCustomers{g: g}, opts))
	mux.Handle(ledgerv1connect.NewLedgerServiceHandler(fakeLedger{g: g}, opts))
	mux.Handle(accessv1connect.NewAccessServiceHandler(fakeAccess{}, opts))
	mux.Handle(auditv1connect.NewAuditServiceHandler(fakeAudit{}, opts))
	mux.Handle(resourcesv1connect.NewResourceServiceHandler(fakeResources{g: g}, opts))
	g.Server = httptest.NewServer(mux)
	return g
}

// failNext makes the next len(errs) calls of procedure fail with errs, in
// order, before they reach the fake.
func (g *fakeGateway) failNext(procedure string, errs ...error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures[procedure] = append(g.failures[procedure], errs...)
}

// failAlways makes every call of procedure fail with err.
func (g *fakeGateway) failAlways(procedure string, err error) {
	g.failNext(procedure, slices.Repeat([]error{err}, 1000)...)
}

// callsOf returns the calls of procedure so far.
func (g *fakeGateway) callsOf(procedure string) []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []call
	for _, c := range g.calls {
		if c.Procedure == procedure {
			out = append(out, c)
		}
	}
	return out
}

// recorder records every call and fails those failNext asked for.
type recorder struct{ g *fakeGateway }

func (r recorder) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		procedure := req.Spec().Procedure
		r.g.mu.Lock()
		onCall := r.g.onCall
		r.g.mu.Unlock()
		if onCall != nil {
			onCall(procedure)
		}
		r.g.mu.Lock()
		r.g.calls = append(r.g.calls, call{
			Procedure:      procedure,
			IdempotencyKey: req.Header().Get("Idempotency-Key"),
			Authorization:  req.Header().Get("Authorization"),
			UserAgent:      req.Header().Get("User-Agent"),
			Request:        proto.Clone(req.Any().(proto.Message)),
		})
		var fail error
		if q := r.g.failures[procedure]; len(q) > 0 {
			fail, r.g.failures[procedure] = q[0], q[1:]
		}
		r.g.mu.Unlock()
		if fail != nil {
			return nil, fail
		}
		return next(ctx, req)
	}
}

func (recorder) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (recorder) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// page returns the page of items that token (an offset, "" for 0) and size
// (0 for 50) select, and the next page's token.
func page[T any](items []T, size int32, token string) ([]T, string, error) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", connect.NewError(connect.CodeInvalidArgument, errors.New("invalid page token"))
		}
		start = n
	}
	if size == 0 {
		size = 50
	}
	end := min(start+int(size), len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

// violation is one violation of a field, as protovalidate reports it.
type violation struct {
	path    []*validate.FieldPathElement
	ruleID  string
	message string
}

// invalidArgument builds the gateway's error for a request that breaks the
// contract: InvalidArgument with a buf.validate.Violations detail.
func invalidArgument(vs ...violation) error {
	var lines []string
	detail := &validate.Violations{}
	for _, v := range vs {
		detail.Violations = append(detail.Violations, validate.Violation_builder{
			Field:   validate.FieldPath_builder{Elements: v.path}.Build(),
			RuleId:  proto.String(v.ruleID),
			Message: proto.String(v.message),
		}.Build())
		lines = append(lines, v.ruleID+": "+v.message)
	}
	ce := connect.NewError(connect.CodeInvalidArgument, errors.New("invalid request: "+strings.Join(lines, "; ")))
	d, err := connect.NewErrorDetail(detail)
	if err != nil {
		panic(err)
	}
	ce.AddDetail(d)
	return ce
}

// field is a path element naming a field, with an index if index >= 0.
func field(name string, index int) *validate.FieldPathElement {
	b := validate.FieldPathElement_builder{FieldName: proto.String(name)}
	if index >= 0 {
		b.Index = proto.Uint64(uint64(index))
	}
	return b.Build()
}

// refusal builds the gateway's error for a domain refusal with a reason:
// the code, the message, and a google.rpc.ErrorInfo detail.
func refusal(code connect.Code, message, reason string, metadata map[string]string) *connect.Error {
	ce := connect.NewError(code, errors.New(message))
	d, err := connect.NewErrorDetail(&anypb.Any{
		TypeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
		Value:   encodeErrorInfo(reason, "plinth.dev", metadata),
	})
	if err != nil {
		panic(err)
	}
	ce.AddDetail(d)
	return ce
}

// encodeErrorInfo encodes a google.rpc.ErrorInfo as proto.Marshal with
// Deterministic does (map entries sorted by key); TestEncodeErrorInfo
// checks it against bytes genproto's errdetails.ErrorInfo marshalled to.
func encodeErrorInfo(reason, domain string, metadata map[string]string) []byte {
	var b []byte
	if reason != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, reason)
	}
	if domain != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, domain)
	}
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, metadata[k])
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	return b
}

// withRetryInfo adds a google.rpc.RetryInfo detail of seconds and nanos to
// ce.
func withRetryInfo(ce *connect.Error, seconds, nanos int64) *connect.Error {
	var duration []byte
	duration = protowire.AppendTag(duration, 1, protowire.VarintType)
	duration = protowire.AppendVarint(duration, uint64(seconds))
	duration = protowire.AppendTag(duration, 2, protowire.VarintType)
	duration = protowire.AppendVarint(duration, uint64(nanos))
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, duration)
	d, err := connect.NewErrorDetail(&anypb.Any{TypeUrl: "type.googleapis.com/google.rpc.RetryInfo", Value: b})
	if err != nil {
		panic(err)
	}
	ce.AddDetail(d)
	return ce
}

type fakeCustomers struct {
	customersv1connect.UnimplementedCustomerServiceHandler
	g *fakeGateway
}

func (f fakeCustomers) SignUpCustomer(_ context.Context, req *connect.Request[customersv1.SignUpCustomerRequest]) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
	var vs []violation
	if req.Msg.GetName() == "" {
		vs = append(vs, violation{[]*validate.FieldPathElement{field("name", -1)}, "string.min_len", "value length must be at least 1 characters"})
	}
	if !strings.Contains(req.Msg.GetEmail(), "@") {
		vs = append(vs, violation{[]*validate.FieldPathElement{field("email", -1)}, "string.email", "value must be a valid email address"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs...)
	}
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	c := &customersv1.Customer{
		Id:    fmt.Sprintf("cus_%026d", len(f.g.customers)+1),
		State: customersv1.CustomerState_CUSTOMER_STATE_PENDING,
		Name:  req.Msg.GetName(),
		Email: req.Msg.GetEmail(),
	}
	f.g.customers = append(f.g.customers, c)
	return connect.NewResponse(&customersv1.SignUpCustomerResponse{Customer: c}), nil
}

func (f fakeCustomers) GetCustomer(_ context.Context, req *connect.Request[customersv1.GetCustomerRequest]) (*connect.Response[customersv1.GetCustomerResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	for _, c := range f.g.customers {
		if c.GetId() == req.Msg.GetCustomerId() {
			return connect.NewResponse(&customersv1.GetCustomerResponse{Customer: c}), nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("customer %s not found", req.Msg.GetCustomerId()))
}

func (f fakeCustomers) ListCustomers(_ context.Context, req *connect.Request[customersv1.ListCustomersRequest]) (*connect.Response[customersv1.ListCustomersResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	items, next, err := page(f.g.customers, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&customersv1.ListCustomersResponse{Customers: items, NextPageToken: next}), nil
}

type fakeLedger struct {
	ledgerv1connect.UnimplementedLedgerServiceHandler
	g *fakeGateway
}

func (f fakeLedger) OpenLedgerAccount(_ context.Context, req *connect.Request[ledgerv1.OpenLedgerAccountRequest]) (*connect.Response[ledgerv1.OpenLedgerAccountResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	a := &ledgerv1.LedgerAccount{
		Id:            fmt.Sprintf("lac_%026d", len(f.g.accounts)+1),
		Currency:      req.Msg.GetCurrency(),
		CustomerId:    req.Msg.GetCustomerId(),
		BalancePolicy: req.Msg.GetBalancePolicy(),
		State:         ledgerv1.LedgerAccountState_LEDGER_ACCOUNT_STATE_OPEN,
	}
	f.g.accounts = append(f.g.accounts, a)
	return connect.NewResponse(&ledgerv1.OpenLedgerAccountResponse{Account: a}), nil
}

func (f fakeLedger) MoveMoney(_ context.Context, req *connect.Request[ledgerv1.MoveMoneyRequest]) (*connect.Response[ledgerv1.MoveMoneyResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	account := func(id string) *ledgerv1.LedgerAccount {
		for _, a := range f.g.accounts {
			if a.GetId() == id {
				return a
			}
		}
		return nil
	}
	for _, leg := range req.Msg.GetLegs() {
		from, to := account(leg.GetFromAccountId()), account(leg.GetToAccountId())
		if from == nil || to == nil {
			return nil, connect.NewError(connect.CodeNotFound, errors.New("ledger account not found"))
		}
		if from.GetBalancePolicy() == ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE && from.GetAvailableBalance() < leg.GetAmount() {
			return nil, refusal(connect.CodeFailedPrecondition,
				fmt.Sprintf("insufficient funds in ledger account %s: %d %s available (the balance may not go below 0), %d requested",
					from.GetId(), from.GetAvailableBalance(), from.GetCurrency(), leg.GetAmount()),
				"INSUFFICIENT_FUNDS", map[string]string{
					"account_id": from.GetId(),
					"currency":   from.GetCurrency(),
					"available":  strconv.FormatInt(from.GetAvailableBalance(), 10),
					"floor":      "0",
					"requested":  strconv.FormatInt(leg.GetAmount(), 10),
				})
		}
	}
	t := &ledgerv1.Transfer{Id: fmt.Sprintf("trf_%026d", len(f.g.transfers)+1), Currency: req.Msg.GetCurrency(), Legs: req.Msg.GetLegs()}
	for _, leg := range req.Msg.GetLegs() {
		from, to := account(leg.GetFromAccountId()), account(leg.GetToAccountId())
		from.PostedBalance -= leg.GetAmount()
		from.AvailableBalance -= leg.GetAmount()
		to.PostedBalance += leg.GetAmount()
		to.AvailableBalance += leg.GetAmount()
		f.g.entries = append(f.g.entries,
			&ledgerv1.Entry{Id: fmt.Sprintf("ent_%026d", len(f.g.entries)+1), AccountId: from.GetId(), TransferId: t.GetId(), Amount: -leg.GetAmount(), BalanceAfter: from.GetPostedBalance()},
			&ledgerv1.Entry{Id: fmt.Sprintf("ent_%026d", len(f.g.entries)+2), AccountId: to.GetId(), TransferId: t.GetId(), Amount: leg.GetAmount(), BalanceAfter: to.GetPostedBalance()})
	}
	f.g.transfers = append(f.g.transfers, t)
	return connect.NewResponse(&ledgerv1.MoveMoneyResponse{Transfer: t}), nil
}

func (f fakeLedger) ListLedgerAccounts(_ context.Context, req *connect.Request[ledgerv1.ListLedgerAccountsRequest]) (*connect.Response[ledgerv1.ListLedgerAccountsResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	items, next, err := page(f.g.accounts, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.ListLedgerAccountsResponse{Accounts: items, NextPageToken: next}), nil
}

func (f fakeLedger) ListTransfers(_ context.Context, req *connect.Request[ledgerv1.ListTransfersRequest]) (*connect.Response[ledgerv1.ListTransfersResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	items, next, err := page(f.g.transfers, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.ListTransfersResponse{Transfers: items, NextPageToken: next}), nil
}

func (f fakeLedger) ListAccountEntries(_ context.Context, req *connect.Request[ledgerv1.ListAccountEntriesRequest]) (*connect.Response[ledgerv1.ListAccountEntriesResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	var mine []*ledgerv1.Entry
	for _, e := range f.g.entries {
		if e.GetAccountId() == req.Msg.GetAccountId() {
			mine = append(mine, e)
		}
	}
	items, next, err := page(mine, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.ListAccountEntriesResponse{Entries: items, NextPageToken: next}), nil
}

// fakeAccess lists fakePrincipals principals, each with fakeKeys keys.
type fakeAccess struct {
	accessv1connect.UnimplementedAccessServiceHandler
}

const (
	fakePrincipals = 5
	fakeKeys       = 3
	fakeRecords    = 7
)

func (fakeAccess) ListPrincipals(_ context.Context, req *connect.Request[accessv1.ListPrincipalsRequest]) (*connect.Response[accessv1.ListPrincipalsResponse], error) {
	var all []*accessv1.Principal
	for i := range fakePrincipals {
		all = append(all, &accessv1.Principal{Id: fmt.Sprintf("prn_%026d", i+1)})
	}
	items, next, err := page(all, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.ListPrincipalsResponse{Principals: items, NextPageToken: next}), nil
}

func (fakeAccess) ListApiKeys(_ context.Context, req *connect.Request[accessv1.ListApiKeysRequest]) (*connect.Response[accessv1.ListApiKeysResponse], error) {
	var all []*accessv1.ApiKey
	for i := range fakeKeys {
		all = append(all, &accessv1.ApiKey{Id: fmt.Sprintf("key_%026d", i+1), PrincipalId: req.Msg.GetPrincipalId()})
	}
	items, next, err := page(all, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&accessv1.ListApiKeysResponse{ApiKeys: items, NextPageToken: next}), nil
}

// fakeAudit lists fakeRecords records.
type fakeAudit struct {
	auditv1connect.UnimplementedAuditServiceHandler
}

func (fakeAudit) ListAuditRecords(_ context.Context, req *connect.Request[auditv1.ListAuditRecordsRequest]) (*connect.Response[auditv1.ListAuditRecordsResponse], error) {
	var all []*auditv1.AuditRecord
	for i := range fakeRecords {
		all = append(all, &auditv1.AuditRecord{Id: fmt.Sprintf("aud_%026d", i+1), Sequence: int64(i + 1)})
	}
	items, next, err := page(all, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&auditv1.ListAuditRecordsResponse{AuditRecords: items, NextPageToken: next}), nil
}

// fakeResources lists a customer and the accounts opened for them.
type fakeResources struct {
	resourcesv1connect.UnimplementedResourceServiceHandler
	g *fakeGateway
}

func (f fakeResources) ListCustomerResources(_ context.Context, req *connect.Request[resourcesv1.ListCustomerResourcesRequest]) (*connect.Response[resourcesv1.ListCustomerResourcesResponse], error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	var all []*resourcesv1.Resource
	for _, c := range f.g.customers {
		if c.GetId() == req.Msg.GetCustomerId() {
			all = append(all, &resourcesv1.Resource{Id: c.GetId(), Domain: "customers", Type: "customer", State: c.GetState().String(), CustomerId: c.GetId()})
		}
	}
	if len(all) == 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("customer %s not found", req.Msg.GetCustomerId()))
	}
	for _, a := range f.g.accounts {
		if a.GetCustomerId() == req.Msg.GetCustomerId() {
			all = append(all, &resourcesv1.Resource{Id: a.GetId(), Domain: "ledger", Type: "ledger_account", State: a.GetState().String(),
				CustomerId: a.GetCustomerId(), Attributes: map[string]string{"currency": a.GetCurrency()}})
		}
	}
	items, next, err := page(all, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&resourcesv1.ListCustomerResourcesResponse{Resources: items, NextPageToken: next}), nil
}
