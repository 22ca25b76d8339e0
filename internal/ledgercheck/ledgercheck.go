// Package ledgercheck checks the ledger's invariants over a set of accounts,
// through the ledger's public API, as a load tool sees them after a run:
//
//   - the posted balances of the accounts sum to zero (money was only moved
//     between them, never made or lost);
//   - no account with a floor (BALANCE_POLICY_NON_NEGATIVE) has a posted or
//     available balance below it (minus its overdraft limit);
//   - each account's entries, oldest first, sum to its posted balance, and
//     each entry's balance_after is the running sum up to it.
//
// The sum is only zero over a closed set: every account that money moved
// to or from must be in it (a load tool's own settlement account and the
// accounts it funded from there). cmd/ledgerload and cmd/soak use it.
package ledgercheck

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
)

// pageSize is the page size of the entry listings: the largest the
// contract allows, to read long histories in few calls.
const pageSize = 200

// Result is what Check read.
type Result struct {
	Accounts int   // accounts checked
	Entries  int64 // entries read, over all accounts
}

// String says what held, in one line.
func (r Result) String() string {
	return fmt.Sprintf("invariants hold over %d accounts (%d entries): balances sum to 0, none below its floor, entries match balances", r.Accounts, r.Entries)
}

// Check reads every account in accounts with client and returns an error
// naming the first invariant it finds broken, or a failed call.
func Check(ctx context.Context, client ledgerv1connect.LedgerServiceClient, accounts []string) (Result, error) {
	var (
		sum int64
		res Result
	)
	for _, id := range accounts {
		got, err := client.GetLedgerAccount(ctx, connect.NewRequest(&ledgerv1.GetLedgerAccountRequest{AccountId: id}))
		if err != nil {
			return res, fmt.Errorf("read account %s: %w", id, err)
		}
		a := got.Msg.GetAccount()
		sum += a.GetPostedBalance()
		if a.GetBalancePolicy() == ledgerv1.BalancePolicy_BALANCE_POLICY_NON_NEGATIVE {
			floor := -a.GetOverdraftLimit()
			if a.GetPostedBalance() < floor {
				return res, fmt.Errorf("invariant broken: account %s's posted balance %d is below its floor %d", id, a.GetPostedBalance(), floor)
			}
			if a.GetAvailableBalance() < floor {
				return res, fmt.Errorf("invariant broken: account %s's available balance %d is below its floor %d", id, a.GetAvailableBalance(), floor)
			}
		}
		var running int64
		token := ""
		for {
			page, err := client.ListAccountEntries(ctx, connect.NewRequest(&ledgerv1.ListAccountEntriesRequest{AccountId: id, PageSize: pageSize, PageToken: token}))
			if err != nil {
				return res, fmt.Errorf("list the entries of account %s: %w", id, err)
			}
			for _, e := range page.Msg.GetEntries() {
				running += e.GetAmount()
				res.Entries++
				if e.GetBalanceAfter() != running {
					return res, fmt.Errorf("invariant broken: entry %s of account %s says the balance after it is %d, its entries so far sum to %d", e.GetId(), id, e.GetBalanceAfter(), running)
				}
			}
			if token = page.Msg.GetNextPageToken(); token == "" {
				break
			}
		}
		if running != a.GetPostedBalance() {
			return res, fmt.Errorf("invariant broken: account %s's entries sum to %d, its balance is %d", id, running, a.GetPostedBalance())
		}
		res.Accounts++
	}
	if sum != 0 {
		return res, fmt.Errorf("invariant broken: the balances of the %d accounts used sum to %d, not 0", len(accounts), sum)
	}
	return res, nil
}
