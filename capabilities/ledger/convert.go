package ledger

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
)

// The contract's enum values and the domain's are in the same order; these
// functions keep that assumption in one place.

func policyFromProto(p ledgerv1.BalancePolicy) BalancePolicy {
	if p < 0 || int(p) >= len(policyNames) {
		return PolicyUnspecified
	}
	return BalancePolicy(p)
}

func policyToProto(p BalancePolicy) ledgerv1.BalancePolicy { return ledgerv1.BalancePolicy(p) }

func accountStateToProto(s AccountState) ledgerv1.LedgerAccountState {
	return ledgerv1.LedgerAccountState(s)
}

func holdStateToProto(s HoldState) ledgerv1.HoldState { return ledgerv1.HoldState(s) }

// accountToProto returns account a, of which held is reserved by holds.
func accountToProto(a Account, held int64) *ledgerv1.LedgerAccount {
	return &ledgerv1.LedgerAccount{
		Id:               a.ID,
		Currency:         a.Currency,
		CustomerId:       a.CustomerID,
		BalancePolicy:    policyToProto(a.Policy),
		OverdraftLimit:   a.OverdraftLimit,
		State:            accountStateToProto(a.State),
		Description:      a.Description,
		PostedBalance:    a.Posted,
		AvailableBalance: available(a.Posted, held),
		CreatedAt:        timestamppb.New(a.CreatedAt),
		UpdatedAt:        timestamppb.New(a.UpdatedAt),
	}
}

func legsFromProto(legs []*ledgerv1.Leg) []Leg {
	out := make([]Leg, len(legs))
	for i, l := range legs {
		out[i] = Leg{From: l.GetFromAccountId(), To: l.GetToAccountId(), Amount: l.GetAmount()}
	}
	return out
}

func transferToProto(t Transfer) *ledgerv1.Transfer {
	legs := make([]*ledgerv1.Leg, len(t.Legs))
	for i, l := range t.Legs {
		legs[i] = &ledgerv1.Leg{FromAccountId: l.From, ToAccountId: l.To, Amount: l.Amount}
	}
	return &ledgerv1.Transfer{
		Id:                   t.ID,
		Currency:             t.Currency,
		Legs:                 legs,
		Description:          t.Description,
		ReversesTransferId:   t.ReversesID,
		ReversedByTransferId: t.ReversedByID,
		CapturesHoldId:       t.CapturesHoldID,
		PostedAt:             timestamppb.New(t.PostedAt),
	}
}

func entryToProto(e Entry) *ledgerv1.Entry {
	return &ledgerv1.Entry{
		Id:           e.ID,
		AccountId:    e.AccountID,
		TransferId:   e.TransferID,
		Amount:       e.Amount,
		BalanceAfter: e.BalanceAfter,
		PostedAt:     timestamppb.New(e.PostedAt),
	}
}

// holdToProto returns hold h as it is at now: an active hold past its
// expiry shows HOLD_STATE_EXPIRED, though no job ever rewrote it.
func holdToProto(h Hold, now time.Time) *ledgerv1.Hold {
	return &ledgerv1.Hold{
		Id:                h.ID,
		AccountId:         h.AccountID,
		Currency:          h.Currency,
		Amount:            h.Amount,
		State:             holdStateToProto(h.StateAt(now)),
		CapturedAmount:    h.CapturedAmount,
		CaptureTransferId: h.CaptureTransferID,
		Description:       h.Description,
		ExpiresAt:         timestamppb.New(h.ExpiresAt),
		CreatedAt:         timestamppb.New(h.CreatedAt),
		UpdatedAt:         timestamppb.New(h.UpdatedAt),
	}
}
