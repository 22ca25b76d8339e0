package audit_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"plinth.dev/plinth/capabilities/audit"
)

// Records that differ anywhere, even only in where one field ends and the
// next begins, hash differently.
func TestComputeHashIsUnambiguous(t *testing.T) {
	base := audit.Record{
		ID: "aud_01JQ0000000000000000000001", Sequence: 3,
		Time:        time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		PrincipalID: "prn_a", Capability: "/x.v1.S/M", Code: "ok",
		ResourceIDs: []string{"a", "b"}, Revealed: []string{"pii"}, RequestID: "r",
		PrevHash: make([]byte, audit.HashSize),
	}
	variants := map[string]func(*audit.Record){
		"sequence":           func(r *audit.Record) { r.Sequence++ },
		"time":               func(r *audit.Record) { r.Time = r.Time.Add(time.Microsecond) },
		"id":                 func(r *audit.Record) { r.ID = "aud_01JQ0000000000000000000002" },
		"principal to cap":   func(r *audit.Record) { r.PrincipalID, r.Capability = "prn_a/", "x.v1.S/M" },
		"resources joined":   func(r *audit.Record) { r.ResourceIDs = []string{"ab"} },
		"resource to reveal": func(r *audit.Record) { r.ResourceIDs, r.Revealed = []string{"a"}, []string{"b", "pii"} },
		"request":            func(r *audit.Record) { r.RequestID = "s" },
		"prev hash":          func(r *audit.Record) { r.PrevHash = bytes.Repeat([]byte{1}, audit.HashSize) },
	}
	want := audit.ComputeHash(base)
	if len(want) != audit.HashSize {
		t.Fatalf("hash of %d bytes", len(want))
	}
	for name, change := range variants {
		r := base.Clone()
		change(&r)
		if bytes.Equal(audit.ComputeHash(r), want) {
			t.Errorf("%s: same hash", name)
		}
	}
	// The stored hash is not part of what is hashed.
	r := base.Clone()
	r.Hash = want
	if !bytes.Equal(audit.ComputeHash(r), want) {
		t.Error("ComputeHash reads Record.Hash")
	}
}

// The encoding that ComputeHash hashes is a stored format: chains written
// by earlier versions must still verify. This pins one record's hash.
func TestComputeHashIsStable(t *testing.T) {
	r := audit.Record{
		ID: "aud_01JD5Q0000000000000000000A", Sequence: 42,
		Time:        time.Date(2026, 11, 25, 17, 0, 0, 123456000, time.UTC),
		PrincipalID: "prn_01JD5Q0000000000000000000B", Capability: "/plinth.ledger.v1.LedgerService/MoveMoney",
		Code: "ok", ResourceIDs: []string{"lac_A", "lac_B", "trf_C"}, Revealed: []string{"pii"},
		RequestID: "req_1", PrevHash: make([]byte, audit.HashSize),
	}
	const want = "7c5bdbdbb88187b061fce9608d79752f98954f4782dd691c677134ffe8d9a6a8"
	if got := hex.EncodeToString(audit.ComputeHash(r)); got != want {
		t.Fatalf("ComputeHash = %s, want %s: the stored encoding changed", got, want)
	}
}
