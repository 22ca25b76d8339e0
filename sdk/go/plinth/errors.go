package plinth

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ErrorDomain is the domain of the ErrorInfo details Plinth's gateway
// sends.
const ErrorDomain = "plinth.dev"

// The reasons Plinth's gateway gives in an ErrorInfo detail, with the
// metadata each carries. Reason(err) returns one of them, or "" for an
// error without a stable reason.
const (
	// ReasonIllegalTransition: a customer cannot move from its state to
	// the one asked for (failed_precondition). Metadata: customer_id,
	// from, to.
	ReasonIllegalTransition = "ILLEGAL_TRANSITION"
	// ReasonCustomerNotEditable: the profile or email of a rejected or
	// closed customer cannot change (failed_precondition). Metadata:
	// customer_id, state.
	ReasonCustomerNotEditable = "CUSTOMER_NOT_EDITABLE"
	// ReasonIdempotencyKeyReused: an Idempotency-Key was sent again with
	// a different request (failed_precondition); use a new key for a new
	// request. No metadata.
	ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	// ReasonRateLimited: the principal went over its rate limit for the
	// class of the capability (resource_exhausted); the error carries a
	// RetryInfo detail, which the Client's retries honour. No metadata.
	ReasonRateLimited = "RATE_LIMITED"
	// ReasonOverloaded: the gateway was saturated and shed the call before
	// it started (unavailable); retrying is safe. No metadata.
	ReasonOverloaded = "OVERLOADED"
	// ReasonEmailTaken: another customer has the email, compared
	// regardless of case (already_exists). No metadata.
	ReasonEmailTaken = "EMAIL_TAKEN"
	// ReasonInsufficientFunds: a movement would take an account's
	// available balance below its floor (failed_precondition). Metadata:
	// account_id, currency, available, floor, requested; see
	// AsInsufficientFunds.
	ReasonInsufficientFunds = "INSUFFICIENT_FUNDS"
	// ReasonAccountFrozen: money cannot move in or out of a frozen ledger
	// account (failed_precondition). Metadata: account_id, state.
	ReasonAccountFrozen = "ACCOUNT_FROZEN"
	// ReasonAccountClosed: money cannot move in or out of a closed ledger
	// account (failed_precondition). Metadata: account_id, state.
	ReasonAccountClosed = "ACCOUNT_CLOSED"
	// ReasonAccountState: a ledger account's state does not allow the
	// change (failed_precondition). Metadata: account_id, state.
	ReasonAccountState = "ACCOUNT_STATE"
	// ReasonCurrencyMismatch: a movement in one currency touches an
	// account in another (failed_precondition). Metadata: account_id,
	// account_currency, currency.
	ReasonCurrencyMismatch = "CURRENCY_MISMATCH"
	// ReasonAlreadyReversed: a transfer was reversed already, or is itself
	// a reversal (failed_precondition). Metadata: transfer_id,
	// reversal_id, reverses_transfer_id.
	ReasonAlreadyReversed = "ALREADY_REVERSED"
	// ReasonHoldNotActive: a hold was captured, released, or has expired
	// (failed_precondition). Metadata: hold_id, state.
	ReasonHoldNotActive = "HOLD_NOT_ACTIVE"
	// ReasonAccountNotEmpty: a ledger account with a balance or an active
	// hold cannot close (failed_precondition). Metadata: account_id,
	// posted, held.
	ReasonAccountNotEmpty = "ACCOUNT_NOT_EMPTY"
	// ReasonPrincipalNameTaken: another principal has the name
	// (already_exists). Metadata: name.
	ReasonPrincipalNameTaken = "PRINCIPAL_NAME_TAKEN"
	// ReasonUnknownRole: the gateway's configuration defines no such role
	// (invalid_argument). Metadata: role.
	ReasonUnknownRole = "UNKNOWN_ROLE"
	// ReasonAPIKeyNotActive: an API key is revoked or expired
	// (failed_precondition). Metadata: api_key_id, state.
	ReasonAPIKeyNotActive = "API_KEY_NOT_ACTIVE"
	// ReasonUnknownResourcePrefix: an id's prefix (such as "trf" of a
	// transfer's id) names no kind of resource that GetResource serves
	// (invalid_argument). Metadata: prefix, known_prefixes (comma-separated,
	// e.g. "cus,lac").
	ReasonUnknownResourcePrefix = "UNKNOWN_RESOURCE_PREFIX"
)

// FieldViolation is one rule of the contract that a request broke.
type FieldViolation struct {
	// Field is the path of the field that broke the rule, such as "email",
	// "address.city" or "legs[0].amount"; empty when the rule is about the
	// whole request (set at least one field, say).
	Field string
	// RuleID names the rule, such as "string.email" or
	// "leg.distinct_accounts".
	RuleID string
	// Message says what is wrong, for people.
	Message string
}

// FieldViolations returns every rule of the contract that the request
// behind err broke, as the gateway's InvalidArgument error lists them (in
// a buf.validate.Violations detail). It returns nil for any other error.
func FieldViolations(err error) []FieldViolation {
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return nil
	}
	var out []FieldViolation
	for _, d := range ce.Details() {
		if d.Type() != violationsType {
			continue
		}
		var vs validate.Violations
		if proto.Unmarshal(d.Bytes(), &vs) != nil {
			continue
		}
		for _, v := range vs.GetViolations() {
			out = append(out, FieldViolation{Field: fieldPath(v.GetField()), RuleID: v.GetRuleId(), Message: v.GetMessage()})
		}
	}
	return out
}

// fieldPath writes a field path as protovalidate does: "a.b[0].c",
// "m[\"key\"]".
func fieldPath(path *validate.FieldPath) string {
	var b strings.Builder
	for i, el := range path.GetElements() {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(el.GetFieldName())
		switch el.WhichSubscript() {
		case validate.FieldPathElement_Index_case:
			b.WriteString("[" + strconv.FormatUint(el.GetIndex(), 10) + "]")
		case validate.FieldPathElement_BoolKey_case:
			b.WriteString("[" + strconv.FormatBool(el.GetBoolKey()) + "]")
		case validate.FieldPathElement_IntKey_case:
			b.WriteString("[" + strconv.FormatInt(el.GetIntKey(), 10) + "]")
		case validate.FieldPathElement_UintKey_case:
			b.WriteString("[" + strconv.FormatUint(el.GetUintKey(), 10) + "]")
		case validate.FieldPathElement_StringKey_case:
			b.WriteString("[" + strconv.Quote(el.GetStringKey()) + "]")
		}
	}
	return b.String()
}

// ErrorInfo is a google.rpc.ErrorInfo detail: why a call was refused, in
// words a program can compare.
type ErrorInfo struct {
	// Reason is the refusal's stable name, such as ReasonInsufficientFunds.
	Reason string
	// Domain is who named it: ErrorDomain for Plinth's gateway.
	Domain string
	// Metadata holds the facts of the refusal; each reason's constant says
	// which.
	Metadata map[string]string
}

// Info returns the ErrorInfo detail of err, if it has one.
func Info(err error) (ErrorInfo, bool) {
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return ErrorInfo{}, false
	}
	for _, d := range ce.Details() {
		if d.Type() == errorInfoType {
			if info, ok := decodeErrorInfo(d.Bytes()); ok {
				return info, true
			}
		}
	}
	return ErrorInfo{}, false
}

// Reason returns the reason of err's ErrorInfo detail, such as
// ReasonInsufficientFunds, or "" if it has none.
func Reason(err error) string {
	info, _ := Info(err)
	return info.Reason
}

// InsufficientFunds is what the ledger says when it refuses a movement
// that would take an account's available balance below its floor.
// Amounts are in minor units of Currency (1050 USD is $10.50).
type InsufficientFunds struct {
	// AccountID is the account that lacks the money.
	AccountID string
	// Currency is the account's ISO 4217 code.
	Currency string
	// Available is the account's available balance before the movement:
	// its posted balance less its active holds.
	Available int64
	// Floor is the lowest the available balance may go: 0, or minus the
	// account's overdraft limit.
	Floor int64
	// Requested is what the movement would have taken out of the account
	// in all.
	Requested int64
}

// AsInsufficientFunds returns the details of an INSUFFICIENT_FUNDS
// refusal, or false if err is not one.
func AsInsufficientFunds(err error) (InsufficientFunds, bool) {
	info, ok := Info(err)
	if !ok || info.Reason != ReasonInsufficientFunds {
		return InsufficientFunds{}, false
	}
	m := info.Metadata
	available, err1 := strconv.ParseInt(m["available"], 10, 64)
	floor, err2 := strconv.ParseInt(m["floor"], 10, 64)
	requested, err3 := strconv.ParseInt(m["requested"], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return InsufficientFunds{}, false
	}
	return InsufficientFunds{AccountID: m["account_id"], Currency: m["currency"], Available: available, Floor: floor, Requested: requested}, true
}

// AvailableBalance returns the available balance, in minor units, and the
// currency of the account that an INSUFFICIENT_FUNDS refusal names, or
// false if err is not one. AsInsufficientFunds gives the rest: the
// account, its floor and what was requested.
func AvailableBalance(err error) (available int64, currency string, ok bool) {
	f, ok := AsInsufficientFunds(err)
	return f.Available, f.Currency, ok
}

// The full names of the detail types read here.
const (
	violationsType = "buf.validate.Violations"
	errorInfoType  = "google.rpc.ErrorInfo"
	retryInfoType  = "google.rpc.RetryInfo"
)

// decodeErrorInfo decodes a google.rpc.ErrorInfo from its wire form:
//
//	message ErrorInfo {
//	  string reason = 1;
//	  string domain = 2;
//	  map<string, string> metadata = 3;
//	}
//
// The SDK reads it by hand rather than depend on the genproto module for
// one small message.
func decodeErrorInfo(b []byte) (ErrorInfo, bool) {
	var info ErrorInfo
	ok := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if typ != protowire.BytesType {
			return true
		}
		switch num {
		case 1:
			info.Reason = string(v)
		case 2:
			info.Domain = string(v)
		case 3:
			var key, value string
			if !eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) bool {
				if typ == protowire.BytesType && num == 1 {
					key = string(v)
				} else if typ == protowire.BytesType && num == 2 {
					value = string(v)
				}
				return true
			}) {
				return false
			}
			if info.Metadata == nil {
				info.Metadata = map[string]string{}
			}
			info.Metadata[key] = value
		}
		return true
	})
	return info, ok
}

// decodeRetryInfo decodes a google.rpc.RetryInfo from its wire form:
//
//	message RetryInfo { google.protobuf.Duration retry_delay = 1; }
//	message Duration { int64 seconds = 1; int32 nanos = 2; }
func decodeRetryInfo(b []byte) (time.Duration, bool) {
	var seconds, nanos int64
	found := false
	ok := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num != 1 || typ != protowire.BytesType {
			return true
		}
		found = true
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) bool {
			if typ != protowire.VarintType {
				return true
			}
			n, _ := protowire.ConsumeVarint(v)
			switch num {
			case 1:
				seconds = int64(n)
			case 2:
				nanos = int64(int32(n))
			}
			return true
		})
	})
	if !ok || !found || seconds < 0 || nanos < 0 {
		return 0, false
	}
	const day = 24 * time.Hour
	if seconds >= int64(day/time.Second) {
		return day, true // far beyond any backoff, and no overflow
	}
	return time.Duration(seconds)*time.Second + time.Duration(nanos), true
}

// eachField calls f with each field of a message in wire form: its number,
// its wire type and its value (the contents of a length-delimited field,
// the varint's bytes of a varint field). It returns false for a malformed
// message, or as soon as f does.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			var m int
			v, m = protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			n = m
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			v = b[:n]
		}
		b = b[n:]
		if !f(num, typ, v) {
			return false
		}
	}
	return true
}
