// Package idempotency makes every mutating capability safe to retry.
//
// A caller sends an Idempotency-Key header with each call of a capability
// whose contract says it mutates, and sends the same key again when it
// retries. The interceptor makes the first call with a key do the work and
// every later call with that key (from the same caller) get the first
// call's answer, success or domain error, without doing the work again:
//
//	key unseen ─────────────> run the capability, record its answer
//	key seen, same request ─> replay the recorded answer
//	                          (header Idempotent-Replayed: true)
//	key seen, other request ─> FailedPrecondition: keys are not reusable
//	key held by a running call ─> Aborted: retry once it has finished
//
// Only final answers are recorded: a success or a domain refusal. An
// outage, a timeout, a lost race (Unavailable, DeadlineExceeded, Aborted,
// Internal...) leaves no record and undoes the effect, so a retry runs the
// call again.
//
// On PostgreSQL the record commits in the same transaction as the call's
// effect (see internal/pgtx), so a crash between the commit and the
// response can neither apply the call twice nor lose it. Records are kept
// for a retention period (24 hours by default) and then deleted.
package idempotency

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"plinth.dev/plinth/internal/keyring"
)

// Header is the request header that carries the idempotency key.
const Header = "Idempotency-Key"

// ReplayedHeader is set to "true" on an answer replayed from a record.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLength bounds a key: 1 to 255 visible ASCII characters.
const MaxKeyLength = 255

// DefaultRetention is how long a record is kept when Options say nothing.
const DefaultRetention = 24 * time.Hour

// ErrInProgress is returned by Store.Begin while another call holds the key.
var ErrInProgress = errors.New("idempotency: key held by a call still running")

// Store keeps the records of idempotency keys.
type Store interface {
	// Begin claims c's key for a call. It returns ErrInProgress while
	// another call holds the key; the record of the call that finished
	// with the key, if there is one (the caller compares its request
	// hash); or else an Attempt, which holds the key until it is finished
	// or abandoned.
	Begin(ctx context.Context, c Claim) (*Record, Attempt, error)

	// DeleteExpired deletes the records created before cutoff and returns
	// how many it deleted.
	DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error)
}

// Claim is a call that wants a key.
type Claim struct {
	Caller      string // whose key: keys of different callers never meet
	Key         string
	Procedure   string
	RequestHash [sha256.Size]byte
	Now         time.Time
}

// Attempt is a call running under a claimed key.
type Attempt interface {
	// Context returns the context to run the capability with. On
	// PostgreSQL it carries the transaction the effect must commit in.
	Context() context.Context
	// Finish records r and releases the key. With keepEffect the call's
	// effect is kept, atomically with r; without, it is undone first (a
	// refused call records its refusal but nothing it may have written).
	// also, if not nil, runs with the attempt's context, and what it writes
	// there lands after the effect is kept or undone and before the
	// commit: it commits with r, or not at all, and if it fails nothing
	// commits. On PostgreSQL its context also carries the batch that
	// records r (pgtx.WithBatch), so that a write made with pgtx.Write
	// costs no round trip of its own.
	Finish(ctx context.Context, r Record, keepEffect bool, also func(context.Context) error) error
	// Abandon undoes the call's effect and releases the key without a
	// record, so that a retry runs the call again. It is a no-op after
	// Finish.
	Abandon()
}

// Record is the answer a call gave under a key.
type Record struct {
	Procedure   string
	RequestHash [sha256.Size]byte
	// Code is 0 for a success, else the Connect code of the refusal.
	Code uint32
	// Response is the response message in deterministic protobuf binary,
	// for a success.
	Response []byte
	// Class is the strictest class of sensitive data the response's type
	// can hold, "" if none: a store that keeps records outside memory seals
	// Response with that class's key.
	Class keyring.Class
	// Message and Details are the refusal's, for a refusal; each detail is
	// a google.protobuf.Any in protobuf binary.
	Message   string
	Details   [][]byte
	CreatedAt time.Time
}
