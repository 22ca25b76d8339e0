package plinth_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/plinth"
)

// goldenErrorInfo is what genproto's errdetails.ErrorInfo{Reason:
// "INSUFFICIENT_FUNDS", Domain: "plinth.dev", Metadata: {account_id:
// lac_01, available: 1000, currency: EUR}} marshals to, deterministically:
// the bytes the gateway sends.
const goldenErrorInfo = "0a12494e53554646494349454e545f46554e4453120a706c696e74682e6465761a140a0a6163636f756e745f696412066c61635f30311a110a09617661696c61626c651204313030301a0f0a0863757272656e63791203455552"

func TestEncodeErrorInfo(t *testing.T) {
	got := hex.EncodeToString(encodeErrorInfo("INSUFFICIENT_FUNDS", "plinth.dev", map[string]string{"account_id": "lac_01", "available": "1000", "currency": "EUR"}))
	if got != goldenErrorInfo {
		t.Fatalf("the tests' ErrorInfo encoder makes\n%s\nwhere genproto makes\n%s", got, goldenErrorInfo)
	}
}

func TestInfoReadsWhatGenprotoWrote(t *testing.T) {
	b, _ := hex.DecodeString(goldenErrorInfo)
	ce := connect.NewError(connect.CodeFailedPrecondition, errors.New("insufficient funds"))
	d, err := connect.NewErrorDetail(&anypb.Any{TypeUrl: "type.googleapis.com/google.rpc.ErrorInfo", Value: b})
	if err != nil {
		t.Fatal(err)
	}
	ce.AddDetail(d)

	info, ok := plinth.Info(fmt.Errorf("moving money: %w", ce))
	want := plinth.ErrorInfo{Reason: plinth.ReasonInsufficientFunds, Domain: plinth.ErrorDomain,
		Metadata: map[string]string{"account_id": "lac_01", "available": "1000", "currency": "EUR"}}
	if !ok || info.Reason != want.Reason || info.Domain != want.Domain || !maps.Equal(info.Metadata, want.Metadata) {
		t.Fatalf("Info = %+v, %v; want %+v", info, ok, want)
	}
	// No floor or requested amount: not the ledger's whole refusal.
	if f, ok := plinth.AsInsufficientFunds(ce); ok {
		t.Errorf("AsInsufficientFunds of incomplete metadata = %+v", f)
	}
}

func TestHelpersOfErrorsWithoutDetails(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("plain"),
		connect.NewError(connect.CodeInvalidArgument, errors.New("no details")),
		refusal(connect.CodeFailedPrecondition, "customer cannot move", plinth.ReasonIllegalTransition, map[string]string{"customer_id": "cus_1"}),
	} {
		if v := plinth.FieldViolations(err); v != nil {
			t.Errorf("FieldViolations(%v) = %v", err, v)
		}
		if _, _, ok := plinth.AvailableBalance(err); ok {
			t.Errorf("AvailableBalance(%v) is ok", err)
		}
	}
	if r := plinth.Reason(errors.New("plain")); r != "" {
		t.Errorf("Reason of a plain error = %q", r)
	}
	if r := plinth.Reason(refusal(connect.CodeFailedPrecondition, "m", plinth.ReasonIllegalTransition, nil)); r != plinth.ReasonIllegalTransition {
		t.Errorf("Reason = %q", r)
	}
}

func TestFieldViolationsOfAValidationError(t *testing.T) {
	key := validate.FieldPathElement_builder{FieldName: proto.String("labels"), StringKey: proto.String("team")}.Build()
	err := invalidArgument(
		violation{[]*validate.FieldPathElement{field("email", -1)}, "string.email", "value must be a valid email address"},
		violation{[]*validate.FieldPathElement{field("legs", 0), field("amount", -1)}, "int64.gt", "value must be greater than 0"},
		violation{[]*validate.FieldPathElement{field("address", -1), field("city", -1)}, "string.min_len", "value length must be at least 1 characters"},
		violation{[]*validate.FieldPathElement{key}, "string.max_len", "too long"},
		violation{nil, "update_customer_profile.some_field", "set at least one of name, phone, date_of_birth, address, tax_id"},
	)
	got := plinth.FieldViolations(fmt.Errorf("signing up: %w", err))
	want := []plinth.FieldViolation{
		{Field: "email", RuleID: "string.email", Message: "value must be a valid email address"},
		{Field: "legs[0].amount", RuleID: "int64.gt", Message: "value must be greater than 0"},
		{Field: "address.city", RuleID: "string.min_len", Message: "value length must be at least 1 characters"},
		{Field: `labels["team"]`, RuleID: "string.max_len", Message: "too long"},
		{Field: "", RuleID: "update_customer_profile.some_field", Message: "set at least one of name, phone, date_of_birth, address, tax_id"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("FieldViolations =\n%+v\nwant\n%+v", got, want)
	}
}

// Through the wire: details survive the Connect protocol's JSON error
// body.
func TestErrorDetailsThroughTheWire(t *testing.T) {
	g := startFake(t)
	client := newClient(t, g)
	ctx := context.Background()

	_, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{Email: "nope"}))
	var fields []string
	for _, v := range plinth.FieldViolations(err) {
		fields = append(fields, v.Field)
	}
	if !slices.Equal(fields, []string{"name", "email"}) {
		t.Fatalf("FieldViolations of %v name %v; want name and email", err, fields)
	}

	open := func(policy ledgerv1.BalancePolicy) string {
		res, err := client.Ledger.OpenLedgerAccount(ctx, connect.NewRequest(&ledgerv1.OpenLedgerAccountRequest{Currency: "EUR", BalancePolicy: policy}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetAccount().GetId()
	}
	settlement, wallet, other := open(ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED), open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE), open(ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE)
	move := func(from, to string, amount int64) error {
		_, err := client.Ledger.MoveMoney(ctx, connect.NewRequest(&ledgerv1.MoveMoneyRequest{
			Currency: "EUR", Legs: []*ledgerv1.Leg{{FromAccountId: from, ToAccountId: to, Amount: amount}},
		}))
		return err
	}
	if err := move(settlement, wallet, 1050); err != nil {
		t.Fatal(err)
	}
	err = move(wallet, other, 5000)
	available, currency, ok := plinth.AvailableBalance(err)
	if !ok || available != 1050 || currency != "EUR" {
		t.Fatalf("AvailableBalance(%v) = %d, %q, %v; want 1050 EUR", err, available, currency, ok)
	}
	f, ok := plinth.AsInsufficientFunds(err)
	if want := (plinth.InsufficientFunds{AccountID: wallet, Currency: "EUR", Available: 1050, Floor: 0, Requested: 5000}); !ok || f != want {
		t.Errorf("AsInsufficientFunds = %+v, %v; want %+v", f, ok, want)
	}
	if r := plinth.Reason(err); r != plinth.ReasonInsufficientFunds {
		t.Errorf("Reason = %q", r)
	}
	if plinth.IsRetryable(err) {
		t.Error("insufficient funds is retryable")
	}
}

func TestIsRetryable(t *testing.T) {
	exhausted := connect.NewError(connect.CodeResourceExhausted, errors.New("too big"))
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{connect.NewError(connect.CodeUnavailable, nil), true},
		{fmt.Errorf("wrapped: %w", connect.NewError(connect.CodeAborted, nil)), true},
		{connect.NewError(connect.CodeDeadlineExceeded, nil), true},
		{exhausted, false},
		{withRetryInfo(connect.NewError(connect.CodeResourceExhausted, errors.New("slow down")), 1, 0), true},
		{connect.NewError(connect.CodeInvalidArgument, nil), false},
		{connect.NewError(connect.CodeFailedPrecondition, nil), false},
		{connect.NewError(connect.CodeInternal, nil), false},
		{connect.NewError(connect.CodeCanceled, nil), false},
	} {
		if got := plinth.IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
