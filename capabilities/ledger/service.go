package ledger

import (
	"context"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
	"plinth.dev/plinth/internal/pagetoken"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
)

// Listing page sizes, the same for every listing of the domain.
const (
	// DefaultPageSize is the page size of a listing whose request gives
	// none.
	DefaultPageSize = pagetoken.DefaultPageSize
	// MaxPageSize is the largest page a listing returns; the contract
	// refuses larger requests.
	MaxPageSize = pagetoken.MaxPageSize
)

// Service implements the ledger capabilities over a Store. The gateway
// validates requests against the contract before they reach it; Service
// enforces what the contract cannot say (currencies, floors, account and
// hold states, reversal once, overflow), and re-checks the few contract
// rules without which it would record something wrong (a leg of zero, an
// overdraft on an account with no floor).
//
// Every change runs inside Store.Apply over the rows it locks, so each rule
// still holds when what it allowed is written, however many gateways serve
// the same store:
//
//	capability ── reads what to lock ──> Store.Apply(Lock{accounts, hold, transfer},
//	                                       change: re-read locked rows ─> check rules ─> record)
//	                                     <── all of change's writes, or none
type Service struct {
	store  Store
	now    func() time.Time
	tokens *pagetoken.Codec
}

var _ ledgerv1connect.LedgerServiceHandler = (*Service)(nil)

// Option configures a Service.
type Option interface{ apply(*Service) }

type optionFunc func(*Service)

func (f optionFunc) apply(s *Service) { f(s) }

// WithClock makes the Service read the time from now: the time it stamps
// on what it records, and the instant at which it decides whether a hold
// still reserves money. It defaults to time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(s *Service) { s.now = now })
}

// WithPageTokens makes the Service sign and check its page tokens with
// tokens: the gateway passes the deployment's Codec, so that a token from
// one gateway is good on every other and after a restart. It defaults to a
// Codec with a random key of the Service's own (tokens good for this
// Service only); a nil tokens keeps the default.
func WithPageTokens(tokens *pagetoken.Codec) Option {
	return optionFunc(func(s *Service) {
		if tokens != nil {
			s.tokens = tokens
		}
	})
}

// NewService returns the ledger capabilities over store.
func NewService(store Store, opts ...Option) *Service {
	s := &Service{store: store, now: time.Now, tokens: pagetoken.NewEphemeralCodec()}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

// timestamp returns the current time at the precision every store keeps
// (PostgreSQL keeps microseconds), so backends return identical records.
// A capability reads it once and uses it for everything it decides and
// stamps, so that a hold cannot be both active and expired in one request.
func (s *Service) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// OpenLedgerAccount opens an account in one currency, with a zero balance.
func (s *Service) OpenLedgerAccount(ctx context.Context, req *connect.Request[ledgerv1.OpenLedgerAccountRequest]) (*connect.Response[ledgerv1.OpenLedgerAccountResponse], error) {
	m := req.Msg
	if err := checkCurrency(m.GetCurrency()); err != nil {
		return nil, err
	}
	policy := policyFromProto(m.GetBalancePolicy())
	switch {
	case policy != PolicyNonNegative && policy != PolicyUnrestricted:
		return nil, &domainerr.InvalidArgumentError{Field: "balance_policy", Description: "must be BALANCE_POLICY_NON_NEGATIVE or BALANCE_POLICY_UNRESTRICTED"}
	case m.GetOverdraftLimit() < 0:
		return nil, &domainerr.InvalidArgumentError{Field: "overdraft_limit", Description: "must not be negative"}
	case m.GetOverdraftLimit() != 0 && policy != PolicyNonNegative:
		return nil, &domainerr.InvalidArgumentError{Field: "overdraft_limit", Description: "applies only to BALANCE_POLICY_NON_NEGATIVE accounts"}
	}
	now := s.timestamp()
	a := Account{
		ID:       ids.New("lac"),
		Currency: m.GetCurrency(),
		// The customer id is stored as given: whether that customer exists
		// is the customers domain's to say, and checks across domains come
		// with the composition of capabilities, not here.
		CustomerID:     m.GetCustomerId(),
		Policy:         policy,
		OverdraftLimit: m.GetOverdraftLimit(),
		State:          AccountOpen,
		Description:    m.GetDescription(),
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if err := s.store.CreateAccount(ctx, a); err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.OpenLedgerAccountResponse{Account: accountToProto(a, 0)}), nil
}

// GetLedgerAccount returns one account with its balances.
func (s *Service) GetLedgerAccount(ctx context.Context, req *connect.Request[ledgerv1.GetLedgerAccountRequest]) (*connect.Response[ledgerv1.GetLedgerAccountResponse], error) {
	a, held, err := s.store.GetAccount(ctx, req.Msg.GetAccountId(), s.timestamp())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.GetLedgerAccountResponse{Account: accountToProto(a, held)}), nil
}

// ListLedgerAccounts returns a page of accounts ordered by id, only one
// customer's if the request names one.
func (s *Service) ListLedgerAccounts(ctx context.Context, req *connect.Request[ledgerv1.ListLedgerAccountsRequest]) (*connect.Response[ledgerv1.ListLedgerAccountsResponse], error) {
	m := req.Msg
	filter := "ListLedgerAccounts customer=" + m.GetCustomerId()
	after, err := s.tokens.Decode(ctx, "page_token", filter, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pagetoken.Size(m.GetPageSize())
	// One more than the page, to know whether another page follows.
	found, err := s.store.ListAccounts(ctx, AccountQuery{AfterID: after, CustomerID: m.GetCustomerId(), Limit: size + 1}, s.timestamp())
	if err != nil {
		return nil, err
	}
	res := &ledgerv1.ListLedgerAccountsResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, found[size-1].ID); err != nil {
			return nil, err
		}
	}
	res.Accounts = make([]*ledgerv1.LedgerAccount, len(found))
	for i, a := range found {
		res.Accounts[i] = accountToProto(a.Account, a.Held)
	}
	return connect.NewResponse(res), nil
}

// GetBalance returns an account's posted and available balances now.
func (s *Service) GetBalance(ctx context.Context, req *connect.Request[ledgerv1.GetBalanceRequest]) (*connect.Response[ledgerv1.GetBalanceResponse], error) {
	a, held, err := s.store.GetAccount(ctx, req.Msg.GetAccountId(), s.timestamp())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.GetBalanceResponse{
		Currency:         a.Currency,
		PostedBalance:    a.Posted,
		AvailableBalance: available(a.Posted, held),
	}), nil
}

// GetBalanceAt returns an account's posted balance as it was at an instant:
// the sum of its entries posted at or before it.
func (s *Service) GetBalanceAt(ctx context.Context, req *connect.Request[ledgerv1.GetBalanceAtRequest]) (*connect.Response[ledgerv1.GetBalanceAtResponse], error) {
	m := req.Msg
	if m.GetAt() == nil || m.GetAt().CheckValid() != nil {
		return nil, &domainerr.InvalidArgumentError{Field: "at", Description: "is required: the instant to read the balance at"}
	}
	// Entries are stamped to the microsecond, so an entry is at or before
	// the instant exactly when it is at or before the instant truncated to
	// the microsecond, which every store can compare precisely.
	at := m.GetAt().AsTime().UTC().Truncate(time.Microsecond)
	a, _, err := s.store.GetAccount(ctx, m.GetAccountId(), s.timestamp())
	if err != nil {
		return nil, err
	}
	posted, err := s.store.BalanceAt(ctx, a.ID, at)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.GetBalanceAtResponse{Currency: a.Currency, PostedBalance: posted}), nil
}

// MoveMoney records one transfer of one or more legs in one currency,
// atomically: all legs apply or none does. See post for the rules it must
// pass.
func (s *Service) MoveMoney(ctx context.Context, req *connect.Request[ledgerv1.MoveMoneyRequest]) (*connect.Response[ledgerv1.MoveMoneyResponse], error) {
	m := req.Msg
	if err := checkCurrency(m.GetCurrency()); err != nil {
		return nil, err
	}
	legs := legsFromProto(m.GetLegs())
	if err := checkLegs(legs); err != nil {
		return nil, err
	}
	now := s.timestamp()
	t := Transfer{
		ID:          ids.New("trf"),
		Currency:    m.GetCurrency(),
		Legs:        legs,
		Description: m.GetDescription(),
		PostedAt:    now,
	}
	err := s.store.Apply(ctx, Lock{AccountIDs: t.accountIDs(), HeldAsOf: now}, func(tx Tx) error {
		return post(tx, t, now, "move money", nil)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.MoveMoneyResponse{Transfer: transferToProto(t)}), nil
}

// GetTransfer returns one transfer with its legs.
func (s *Service) GetTransfer(ctx context.Context, req *connect.Request[ledgerv1.GetTransferRequest]) (*connect.Response[ledgerv1.GetTransferResponse], error) {
	t, err := s.store.GetTransfer(ctx, req.Msg.GetTransferId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.GetTransferResponse{Transfer: transferToProto(t)}), nil
}

// ListTransfers returns a page of transfers ordered by id, only those with
// a leg to or from one account if the request names one.
func (s *Service) ListTransfers(ctx context.Context, req *connect.Request[ledgerv1.ListTransfersRequest]) (*connect.Response[ledgerv1.ListTransfersResponse], error) {
	m := req.Msg
	filter := "ListTransfers account=" + m.GetAccountId()
	after, err := s.tokens.Decode(ctx, "page_token", filter, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := pagetoken.Size(m.GetPageSize())
	found, err := s.store.ListTransfers(ctx, TransferQuery{AfterID: after, AccountID: m.GetAccountId(), Limit: size + 1})
	if err != nil {
		return nil, err
	}
	res := &ledgerv1.ListTransfersResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, found[size-1].ID); err != nil {
			return nil, err
		}
	}
	res.Transfers = make([]*ledgerv1.Transfer, len(found))
	for i, t := range found {
		res.Transfers[i] = transferToProto(t)
	}
	return connect.NewResponse(res), nil
}

// ReverseTransfer records the transfer that undoes another, once: the same
// legs with From and To swapped. It is refused for a transfer reversed
// already and for a reversal; and, like any movement, when an account is
// not open any more or lacks the funds to give the money back.
func (s *Service) ReverseTransfer(ctx context.Context, req *connect.Request[ledgerv1.ReverseTransferRequest]) (*connect.Response[ledgerv1.ReverseTransferResponse], error) {
	m := req.Msg
	original, err := s.store.GetTransfer(ctx, m.GetTransferId())
	if err != nil {
		return nil, err
	}
	description := m.GetDescription()
	if description == "" {
		description = "reversal of " + original.ID
	}
	now := s.timestamp()
	var reversal Transfer
	// A transfer's legs never change, so the accounts read before locking
	// are the accounts of the locked transfer.
	err = s.store.Apply(ctx, Lock{AccountIDs: original.accountIDs(), TransferID: original.ID, HeldAsOf: now}, func(tx Tx) error {
		t, err := tx.Transfer()
		if err != nil {
			return err
		}
		if t.ReversesID != "" {
			return &AlreadyReversedError{TransferID: t.ID, ReversesID: t.ReversesID}
		}
		if t.ReversedByID != "" {
			return &AlreadyReversedError{TransferID: t.ID, ReversalID: t.ReversedByID}
		}
		legs := make([]Leg, len(t.Legs))
		for i, l := range t.Legs {
			legs[i] = Leg{From: l.To, To: l.From, Amount: l.Amount}
		}
		reversal = Transfer{
			ID:          ids.New("trf"),
			Currency:    t.Currency,
			Legs:        legs,
			Description: description,
			ReversesID:  t.ID,
			PostedAt:    now,
		}
		if err := post(tx, reversal, now, "move money", nil); err != nil {
			return err
		}
		return tx.MarkReversed(reversal.ID)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.ReverseTransferResponse{Reversal: transferToProto(reversal)}), nil
}

// HoldFunds reserves money in an open account until it is captured,
// released, or the hold expires: the available balance drops, the posted
// balance does not. It is refused if the available balance would go below
// the account's floor.
func (s *Service) HoldFunds(ctx context.Context, req *connect.Request[ledgerv1.HoldFundsRequest]) (*connect.Response[ledgerv1.HoldFundsResponse], error) {
	m := req.Msg
	if m.GetAmount() <= 0 {
		return nil, &domainerr.InvalidArgumentError{Field: "amount", Description: "must be positive"}
	}
	if m.GetTtl() == nil || m.GetTtl().CheckValid() != nil || m.GetTtl().AsDuration() <= 0 {
		return nil, &domainerr.InvalidArgumentError{Field: "ttl", Description: "must be a positive duration"}
	}
	now := s.timestamp()
	accountID, amount := m.GetAccountId(), m.GetAmount()
	var h Hold
	err := s.store.Apply(ctx, Lock{AccountIDs: []string{accountID}, HeldAsOf: now}, func(tx Tx) error {
		a := tx.Account(accountID)
		if a.State != AccountOpen {
			return &AccountNotOpenError{AccountID: a.ID, State: a.State, Action: "hold funds"}
		}
		held, err := tx.HeldAt(a.ID, now)
		if err != nil {
			return err
		}
		if _, ok := add(held, amount); !ok {
			return &OverflowError{What: "the amount held in ledger account " + a.ID}
		}
		avail, ok := sub(a.Posted, held)
		if !ok {
			return &OverflowError{What: "the available balance of ledger account " + a.ID}
		}
		after, ok := sub(avail, amount)
		floor, hasFloor := a.Floor()
		switch {
		case hasFloor && (!ok || after < floor):
			return &InsufficientFundsError{AccountID: a.ID, Currency: a.Currency, Available: avail, Floor: floor, Requested: amount}
		case !ok:
			return &OverflowError{What: "the available balance of ledger account " + a.ID}
		}
		h = Hold{
			ID:          ids.New("hld"),
			AccountID:   a.ID,
			Currency:    a.Currency,
			Amount:      amount,
			State:       HoldActive,
			Description: m.GetDescription(),
			ExpiresAt:   now.Add(m.GetTtl().AsDuration()).Truncate(time.Microsecond),
			CreatedAt:   now,
			UpdatedAt:   now,
		}
		return tx.SaveHold(h)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.HoldFundsResponse{Hold: holdToProto(h, now)}), nil
}

// CaptureHold moves all or part of what an active hold reserves to another
// account, in one transfer, once; what it does not capture is freed, since
// a captured hold reserves nothing. Both accounts must be open and in the
// hold's currency.
func (s *Service) CaptureHold(ctx context.Context, req *connect.Request[ledgerv1.CaptureHoldRequest]) (*connect.Response[ledgerv1.CaptureHoldResponse], error) {
	m := req.Msg
	if m.GetAmount() < 0 {
		return nil, &domainerr.InvalidArgumentError{Field: "amount", Description: "must not be negative"}
	}
	stored, err := s.store.GetHold(ctx, m.GetHoldId())
	if err != nil {
		return nil, err
	}
	to := m.GetToAccountId()
	if to == stored.AccountID {
		return nil, &domainerr.InvalidArgumentError{Field: "to_account_id", Description: "is the account the hold is in; a capture moves the money to another account"}
	}
	description := m.GetDescription()
	if description == "" {
		description = "capture of " + stored.ID
	}
	now := s.timestamp()
	var h Hold
	var t Transfer
	// A hold never changes account, so the account read before locking is
	// the account of the locked hold.
	err = s.store.Apply(ctx, Lock{AccountIDs: []string{stored.AccountID, to}, HoldID: stored.ID, HeldAsOf: now}, func(tx Tx) error {
		var err error
		if h, err = tx.Hold(); err != nil {
			return err
		}
		if !h.ReservesAt(now) {
			return &HoldNotActiveError{HoldID: h.ID, State: h.StateAt(now), Action: "capture"}
		}
		amount := m.GetAmount()
		if amount == 0 {
			amount = h.Amount
		}
		if amount > h.Amount {
			return &domainerr.InvalidArgumentError{Field: "amount", Description: "is more than the hold reserves"}
		}
		t = Transfer{
			ID:             ids.New("trf"),
			Currency:       h.Currency,
			Legs:           []Leg{{From: h.AccountID, To: to, Amount: amount}},
			Description:    description,
			CapturesHoldID: h.ID,
			PostedAt:       now,
		}
		if err := post(tx, t, now, "capture a hold", &h); err != nil {
			return err
		}
		h.State = HoldCaptured
		h.CapturedAmount = amount
		h.CaptureTransferID = t.ID
		h.UpdatedAt = now
		return tx.SaveHold(h)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.CaptureHoldResponse{Hold: holdToProto(h, now), Transfer: transferToProto(t)}), nil
}

// ReleaseHold frees an active hold without moving money, once. It is
// allowed on a frozen account: it only makes money available.
func (s *Service) ReleaseHold(ctx context.Context, req *connect.Request[ledgerv1.ReleaseHoldRequest]) (*connect.Response[ledgerv1.ReleaseHoldResponse], error) {
	stored, err := s.store.GetHold(ctx, req.Msg.GetHoldId())
	if err != nil {
		return nil, err
	}
	now := s.timestamp()
	var h Hold
	err = s.store.Apply(ctx, Lock{AccountIDs: []string{stored.AccountID}, HoldID: stored.ID, HeldAsOf: now}, func(tx Tx) error {
		var err error
		if h, err = tx.Hold(); err != nil {
			return err
		}
		if !h.ReservesAt(now) {
			return &HoldNotActiveError{HoldID: h.ID, State: h.StateAt(now), Action: "release"}
		}
		h.State = HoldReleased
		h.UpdatedAt = now
		return tx.SaveHold(h)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.ReleaseHoldResponse{Hold: holdToProto(h, now)}), nil
}

// ListAccountEntries returns a page of an account's entries, oldest first
// (in the order they were posted).
func (s *Service) ListAccountEntries(ctx context.Context, req *connect.Request[ledgerv1.ListAccountEntriesRequest]) (*connect.Response[ledgerv1.ListAccountEntriesResponse], error) {
	m := req.Msg
	filter := "ListAccountEntries account=" + m.GetAccountId()
	key, err := s.tokens.Decode(ctx, "page_token", filter, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	var afterSeq int64
	if key != "" {
		if afterSeq, err = strconv.ParseInt(key, 10, 64); err != nil || afterSeq < 1 {
			return nil, &domainerr.InvalidArgumentError{Field: "page_token",
				Description: "is not a page token this listing issued; pass the next_page_token of the previous page, or an empty one to start again"}
		}
	}
	size := pagetoken.Size(m.GetPageSize())
	found, err := s.store.ListEntries(ctx, EntryQuery{AccountID: m.GetAccountId(), AfterSeq: afterSeq, Limit: size + 1})
	if err != nil {
		return nil, err
	}
	res := &ledgerv1.ListAccountEntriesResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, strconv.FormatInt(found[size-1].Seq, 10)); err != nil {
			return nil, err
		}
	}
	res.Entries = make([]*ledgerv1.Entry, len(found))
	for i, e := range found {
		res.Entries[i] = entryToProto(e)
	}
	return connect.NewResponse(res), nil
}

// FreezeLedgerAccount stops money moving in or out of an open account.
// Holds on it stay; they can be released, not captured.
func (s *Service) FreezeLedgerAccount(ctx context.Context, req *connect.Request[ledgerv1.FreezeLedgerAccountRequest]) (*connect.Response[ledgerv1.FreezeLedgerAccountResponse], error) {
	reason := req.Msg.GetReason()
	if reason == "" {
		return nil, &domainerr.InvalidArgumentError{Field: "reason", Description: "must say why the account is frozen"}
	}
	a, held, err := s.changeAccount(ctx, req.Msg.GetAccountId(), func(a *Account, _ int64) error {
		if a.State != AccountOpen {
			return &AccountNotOpenError{AccountID: a.ID, State: a.State, Action: "freeze"}
		}
		a.State = AccountFrozen
		a.FreezeReason = reason
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.FreezeLedgerAccountResponse{Account: accountToProto(a, held)}), nil
}

// UnfreezeLedgerAccount lets money move again in a frozen account.
func (s *Service) UnfreezeLedgerAccount(ctx context.Context, req *connect.Request[ledgerv1.UnfreezeLedgerAccountRequest]) (*connect.Response[ledgerv1.UnfreezeLedgerAccountResponse], error) {
	a, held, err := s.changeAccount(ctx, req.Msg.GetAccountId(), func(a *Account, _ int64) error {
		if a.State != AccountFrozen {
			return &AccountNotOpenError{AccountID: a.ID, State: a.State, Action: "unfreeze"}
		}
		a.State = AccountOpen
		a.FreezeReason = ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.UnfreezeLedgerAccountResponse{Account: accountToProto(a, held)}), nil
}

// CloseLedgerAccount closes an open or frozen account for good, once its
// posted balance is zero and no hold reserves money in it.
func (s *Service) CloseLedgerAccount(ctx context.Context, req *connect.Request[ledgerv1.CloseLedgerAccountRequest]) (*connect.Response[ledgerv1.CloseLedgerAccountResponse], error) {
	a, held, err := s.changeAccount(ctx, req.Msg.GetAccountId(), func(a *Account, held int64) error {
		if a.State != AccountOpen && a.State != AccountFrozen {
			return &AccountNotOpenError{AccountID: a.ID, State: a.State, Action: "close"}
		}
		if a.Posted != 0 || held != 0 {
			return &AccountNotEmptyError{AccountID: a.ID, Currency: a.Currency, Posted: a.Posted, ActiveHolds: held}
		}
		a.State = AccountClosed
		a.FreezeReason = "" // kept only while frozen
		return nil
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ledgerv1.CloseLedgerAccountResponse{Account: accountToProto(a, held)}), nil
}

// changeAccount applies change to one locked account atomically, stamping
// UpdatedAt, and returns the account as changed with the sum held in it.
// change gets that sum too, as of the same instant.
func (s *Service) changeAccount(ctx context.Context, id string, change func(a *Account, held int64) error) (Account, int64, error) {
	now := s.timestamp()
	var a Account
	var held int64
	err := s.store.Apply(ctx, Lock{AccountIDs: []string{id}, HeldAsOf: now}, func(tx Tx) error {
		a = tx.Account(id)
		var err error
		if held, err = tx.HeldAt(id, now); err != nil {
			return err
		}
		if err := change(&a, held); err != nil {
			return err
		}
		a.UpdatedAt = now
		return tx.UpdateAccount(a)
	})
	if err != nil {
		return Account{}, 0, err
	}
	return a, held, nil
}
