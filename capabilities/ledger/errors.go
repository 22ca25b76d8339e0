package ledger

import (
	"fmt"
	"strconv"
	"strings"

	"plinth.dev/plinth/capabilities/domainerr"
)

// AccountNotFound returns the error for an account id that does not exist.
func AccountNotFound(id string) error {
	return &domainerr.NotFoundError{Resource: "ledger account", ID: id}
}

// TransferNotFound returns the error for a transfer id that does not exist.
func TransferNotFound(id string) error {
	return &domainerr.NotFoundError{Resource: "transfer", ID: id}
}

// HoldNotFound returns the error for a hold id that does not exist.
func HoldNotFound(id string) error {
	return &domainerr.NotFoundError{Resource: "hold", ID: id}
}

// InsufficientFundsError refuses a movement that would take an account's
// available balance below its floor. Its details say how much is available.
type InsufficientFundsError struct {
	AccountID string
	Currency  string
	// Available is the account's available balance before the movement.
	Available int64
	// Floor is the lowest the account may go: 0, or minus its overdraft.
	Floor int64
	// Requested is what the movement would take out of the account in all.
	Requested int64
}

func (e *InsufficientFundsError) Error() string {
	return fmt.Sprintf("insufficient funds in ledger account %s: %d %s available (the balance may not go below %d), %d requested",
		e.AccountID, e.Available, e.Currency, e.Floor, e.Requested)
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *InsufficientFundsError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "INSUFFICIENT_FUNDS".
func (e *InsufficientFundsError) Reason() string { return "INSUFFICIENT_FUNDS" }

// Metadata gives the account, currency, available balance, floor and
// requested amount, in minor units as decimal strings.
func (e *InsufficientFundsError) Metadata() map[string]string {
	return map[string]string{
		"account_id": e.AccountID,
		"currency":   e.Currency,
		"available":  strconv.FormatInt(e.Available, 10),
		"floor":      strconv.FormatInt(e.Floor, 10),
		"requested":  strconv.FormatInt(e.Requested, 10),
	}
}

// AccountNotOpenError refuses to move money in or out of an account that is
// frozen or closed, or to change an account whose state does not allow it.
type AccountNotOpenError struct {
	AccountID string
	State     AccountState
	// Action says what was refused, e.g. "move money", "freeze".
	Action string
}

func (e *AccountNotOpenError) Error() string {
	return fmt.Sprintf("cannot %s: ledger account %s is %s", e.Action, e.AccountID, strings.ToUpper(e.State.String()))
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *AccountNotOpenError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "ACCOUNT_FROZEN" or "ACCOUNT_CLOSED" (or
// "ACCOUNT_STATE" for any other state).
func (e *AccountNotOpenError) Reason() string {
	switch e.State {
	case AccountFrozen:
		return "ACCOUNT_FROZEN"
	case AccountClosed:
		return "ACCOUNT_CLOSED"
	default:
		return "ACCOUNT_STATE"
	}
}

// Metadata names the account and its state.
func (e *AccountNotOpenError) Metadata() map[string]string {
	return map[string]string{"account_id": e.AccountID, "state": "LEDGER_ACCOUNT_STATE_" + strings.ToUpper(e.State.String())}
}

// CurrencyMismatchError refuses a movement in one currency that touches an
// account in another.
type CurrencyMismatchError struct {
	AccountID       string
	AccountCurrency string
	Currency        string // the transfer's or hold's
}

func (e *CurrencyMismatchError) Error() string {
	return fmt.Sprintf("ledger account %s holds %s, not %s", e.AccountID, e.AccountCurrency, e.Currency)
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *CurrencyMismatchError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "CURRENCY_MISMATCH".
func (e *CurrencyMismatchError) Reason() string { return "CURRENCY_MISMATCH" }

// Metadata names the account and both currencies.
func (e *CurrencyMismatchError) Metadata() map[string]string {
	return map[string]string{"account_id": e.AccountID, "account_currency": e.AccountCurrency, "currency": e.Currency}
}

// AlreadyReversedError refuses to reverse a transfer twice, or to reverse a
// reversal.
type AlreadyReversedError struct {
	TransferID string
	// ReversalID is the reversal that exists already; empty when the
	// transfer is itself a reversal.
	ReversalID string
	// ReversesID is set when the transfer is itself a reversal.
	ReversesID string
}

func (e *AlreadyReversedError) Error() string {
	if e.ReversesID != "" {
		return fmt.Sprintf("transfer %s is itself the reversal of %s and cannot be reversed", e.TransferID, e.ReversesID)
	}
	return fmt.Sprintf("transfer %s was reversed already, by %s", e.TransferID, e.ReversalID)
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *AlreadyReversedError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "ALREADY_REVERSED".
func (e *AlreadyReversedError) Reason() string { return "ALREADY_REVERSED" }

// Metadata names the transfer and its reversal.
func (e *AlreadyReversedError) Metadata() map[string]string {
	return map[string]string{"transfer_id": e.TransferID, "reversal_id": e.ReversalID, "reverses_transfer_id": e.ReversesID}
}

// HoldNotActiveError refuses to capture or release a hold that was
// captured, released, or has expired.
type HoldNotActiveError struct {
	HoldID string
	State  HoldState // as of the request: HoldExpired when it expired
	Action string    // "capture" or "release"
}

func (e *HoldNotActiveError) Error() string {
	return fmt.Sprintf("cannot %s hold %s: it is %s", e.Action, e.HoldID, strings.ToUpper(e.State.String()))
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *HoldNotActiveError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "HOLD_NOT_ACTIVE".
func (e *HoldNotActiveError) Reason() string { return "HOLD_NOT_ACTIVE" }

// Metadata names the hold and its state.
func (e *HoldNotActiveError) Metadata() map[string]string {
	return map[string]string{"hold_id": e.HoldID, "state": "HOLD_STATE_" + strings.ToUpper(e.State.String())}
}

// AccountNotEmptyError refuses to close an account with a non-zero posted
// balance or an active hold.
type AccountNotEmptyError struct {
	AccountID   string
	Currency    string
	Posted      int64
	ActiveHolds int64 // the sum held
}

func (e *AccountNotEmptyError) Error() string {
	return fmt.Sprintf("cannot close ledger account %s: its balance is %d %s and %d %s is on hold; both must be zero",
		e.AccountID, e.Posted, e.Currency, e.ActiveHolds, e.Currency)
}

// Kind returns domainerr.KindFailedPrecondition.
func (e *AccountNotEmptyError) Kind() domainerr.Kind { return domainerr.KindFailedPrecondition }

// Reason returns "ACCOUNT_NOT_EMPTY".
func (e *AccountNotEmptyError) Reason() string { return "ACCOUNT_NOT_EMPTY" }

// Metadata gives the balance and the amount on hold.
func (e *AccountNotEmptyError) Metadata() map[string]string {
	return map[string]string{
		"account_id": e.AccountID,
		"posted":     strconv.FormatInt(e.Posted, 10),
		"held":       strconv.FormatInt(e.ActiveHolds, 10),
	}
}

// OverflowError refuses a movement whose amounts, or an account's balance
// after it, would not fit in int64 minor units.
type OverflowError struct {
	// What overflowed, e.g. "the legs' total" or "the balance of ledger
	// account lac_...".
	What string
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("%s would overflow 64-bit minor units", e.What)
}

// Kind returns domainerr.KindInvalidArgument.
func (e *OverflowError) Kind() domainerr.Kind { return domainerr.KindInvalidArgument }

var (
	_ domainerr.Detailed = (*InsufficientFundsError)(nil)
	_ domainerr.Detailed = (*AccountNotOpenError)(nil)
	_ domainerr.Detailed = (*CurrencyMismatchError)(nil)
	_ domainerr.Detailed = (*AlreadyReversedError)(nil)
	_ domainerr.Detailed = (*HoldNotActiveError)(nil)
	_ domainerr.Detailed = (*AccountNotEmptyError)(nil)
	_ domainerr.Error    = (*OverflowError)(nil)
)
