// Package audit is the audit domain: an append-only, tamper-evident record
// of every capability call.
//
// The gateway calls Service.Append once per capability call, whatever its
// outcome, and Service.Chain links the records appended onto the chain
// (see Store for why the two are apart); that is a Go API, not an rpc, so nobody can write to the record
// through the platform's contracts. The capabilities of plinth.audit.v1
// (ListAuditRecords, GetAuditRecord, VerifyAuditChain) only read.
//
// Records are numbered from 1 with no gap and chained by hash:
//
//	Record{Sequence: 1, PrevHash: 32 zero bytes, Hash: h1}
//	Record{Sequence: 2, PrevHash: h1,            Hash: h2}
//	Record{Sequence: 3, PrevHash: h2,            Hash: h3}  ...
//
// where each Hash is ComputeHash of the record: SHA-256 over its contents
// and its PrevHash. Editing a stored record makes its hash wrong; deleting
// one leaves a gap in the sequence; rewriting a record together with its
// hash breaks the next record's PrevHash. Service.Verify (and the
// VerifyAuditChain capability) walks the chain and reports the first such
// problem. What the chain cannot show is the loss of the newest records
// together with every trace of them; see Store.
//
// The package holds the model, the chain rules, the Service, the Store
// interface that backends implement and the domain's errors. Backends live
// in audit/memory and audit/postgres; both pass audit/audittest.Run.
package audit

import (
	"plinth.dev/plinth/internal/pagetoken"

	"slices"
	"time"
)

// Entry is what the gateway knows of one capability call when it ends:
// everything a Record holds except what the chain assigns.
type Entry struct {
	// PrincipalID is the principal that called; empty for a call that did
	// not authenticate.
	PrincipalID string
	// Capability is the procedure called, the rpc's full name, e.g.
	// "/plinth.ledger.v1.LedgerService/Transfer". Required.
	Capability string
	// Code is how the call ended: "ok", or the name of a Connect code as
	// connect.Code.String gives it ("permission_denied"). Required.
	Code string
	// ResourceIDs are the ids of the resources the call touched.
	ResourceIDs []string
	// Revealed are the sensitivity classes shown in full to the caller,
	// e.g. "pii".
	Revealed []string
	// RequestID identifies the request in the gateway's logs.
	RequestID string
}

// Record is one call as recorded: an Entry, where it stands in the chain,
// and when it was appended.
type Record struct {
	ID       string // "aud_" and a ULID
	Sequence int64  // 1, 2, 3..., without gaps
	// Time is when the record was appended, in UTC, to the microsecond.
	Time        time.Time
	PrincipalID string
	Capability  string
	Code        string
	ResourceIDs []string // nil when none
	Revealed    []string // nil when none
	RequestID   string
	// PrevHash is the Hash of the record before, HashSize zero bytes for
	// the first record.
	PrevHash []byte
	// Hash is ComputeHash of the record: HashSize bytes.
	Hash []byte
}

// Clone returns a copy of r that shares no memory with it.
func (r Record) Clone() Record {
	r.ResourceIDs = slices.Clone(r.ResourceIDs)
	r.Revealed = slices.Clone(r.Revealed)
	r.PrevHash = slices.Clone(r.PrevHash)
	r.Hash = slices.Clone(r.Hash)
	return r
}

// Page sizes of ListAuditRecords.
const (
	DefaultPageSize = pagetoken.DefaultPageSize
	MaxPageSize     = pagetoken.MaxPageSize
)
