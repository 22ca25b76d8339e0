package ledgercheck

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
)

// fakeLedger answers GetLedgerAccount and ListAccountEntries from maps,
// entries two a page, so that paging is exercised.
type fakeLedger struct {
	ledgerv1connect.UnimplementedLedgerServiceHandler
	accounts map[string]*ledgerv1.LedgerAccount
	entries  map[string][]*ledgerv1.Entry
}

func (f *fakeLedger) GetLedgerAccount(_ context.Context, req *connect.Request[ledgerv1.GetLedgerAccountRequest]) (*connect.Response[ledgerv1.GetLedgerAccountResponse], error) {
	a, ok := f.accounts[req.Msg.GetAccountId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, nil)
	}
	return connect.NewResponse(&ledgerv1.GetLedgerAccountResponse{Account: a}), nil
}

func (f *fakeLedger) ListAccountEntries(_ context.Context, req *connect.Request[ledgerv1.ListAccountEntriesRequest]) (*connect.Response[ledgerv1.ListAccountEntriesResponse], error) {
	all := f.entries[req.Msg.GetAccountId()]
	start := 0
	if t := req.Msg.GetPageToken(); t != "" {
		start = len(t) // the token is start dots
	}
	end := min(start+2, len(all))
	res := &ledgerv1.ListAccountEntriesResponse{Entries: all[start:end]}
	if end < len(all) {
		res.NextPageToken = strings.Repeat(".", end)
	}
	return connect.NewResponse(res), nil
}

// ledger builds a fake of three accounts with the postings applied.
func ledger(postings ...map[string]int64) *fakeLedger {
	f := &fakeLedger{
		accounts: map[string]*ledgerv1.LedgerAccount{
			"settle": {Id: "settle", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_UNRESTRICTED},
			"a":      {Id: "a", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE},
			"b":      {Id: "b", BalancePolicy: ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE, OverdraftLimit: 50},
		},
		entries: map[string][]*ledgerv1.Entry{},
	}
	for _, p := range postings {
		f.post(p)
	}
	return f
}

// post records one entry per account of p, with its amount, as a ledger
// that checks nothing would.
func (f *fakeLedger) post(p map[string]int64) {
	for id, amount := range p {
		a := f.accounts[id]
		a.PostedBalance += amount
		a.AvailableBalance = a.PostedBalance
		f.entries[id] = append(f.entries[id], &ledgerv1.Entry{Id: "e", AccountId: id, Amount: amount, BalanceAfter: a.PostedBalance})
	}
}

var all = []string{"settle", "a", "b"}

func TestCheckHolds(t *testing.T) {
	f := ledger(
		map[string]int64{"settle": -100, "a": 100},
		map[string]int64{"settle": -100, "b": 100},
		map[string]int64{"a": -30, "b": 30},
		map[string]int64{"a": -70, "b": 70},
		map[string]int64{"b": -250, "a": 250}, // b goes into its overdraft
		map[string]int64{"a": -10, "settle": 10},
	)
	res, err := Check(context.Background(), f, all)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accounts != 3 || res.Entries != 12 {
		t.Errorf("checked %+v, want 3 accounts and 12 entries", res)
	}
}

func TestCheckBroken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(f *fakeLedger)
		want   string
	}{
		{"sum", func(f *fakeLedger) { f.post(map[string]int64{"a": 5}) }, "sum to 5"},
		{"posted below floor", func(f *fakeLedger) { f.post(map[string]int64{"b": -181, "settle": 181}) }, "posted balance -51 is below its floor -50"},
		{"available below floor", func(f *fakeLedger) { f.accounts["a"].AvailableBalance = -1 }, "available balance -1 is below its floor 0"},
		{"balance after", func(f *fakeLedger) { f.entries["a"][1].Amount++ }, "says the balance after it"},
		{"entries and balance", func(f *fakeLedger) { f.accounts["a"].PostedBalance++ }, "entries sum to 70, its balance is 71"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ledger(
				map[string]int64{"settle": -100, "a": 100},
				map[string]int64{"settle": -100, "b": 100},
				map[string]int64{"a": -30, "b": 30},
			)
			tc.mutate(f)
			_, err := Check(context.Background(), f, all)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
