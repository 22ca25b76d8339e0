package memory_test

import (
	"testing"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/audit/audittest"
	"plinth.dev/plinth/capabilities/audit/memory"
	"plinth.dev/plinth/capabilities/registry"
)

func TestConformance(t *testing.T) {
	audittest.Run(t, func(*testing.T) audit.Store { return memory.New() })
}

// Editing one field of a stored record, any field, shows at that record.
func TestVerifyFindsAnEditedRecord(t *testing.T) {
	for name, edit := range map[string]func(*audit.Record){
		"code":      func(r *audit.Record) { r.Code = "permission_denied" },
		"principal": func(r *audit.Record) { r.PrincipalID = "prn_00000000000000000000000009" },
		"revealed":  func(r *audit.Record) { r.Revealed = nil },
		"resources": func(r *audit.Record) { r.ResourceIDs = append(r.ResourceIDs, "cus_x") },
		"time":      func(r *audit.Record) { r.Time = r.Time.Add(-1e3) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := memory.New()
			audittest.Fill(t, s, 10)
			s.TamperForTest(7, edit)
			audittest.WantBroken(t, s, 7, "record 7's hash does not match its contents")
		})
	}
}

// Rewriting a record together with a hash that matches it breaks the link
// of the next record.
func TestVerifyFindsARehashedRecord(t *testing.T) {
	s := memory.New()
	audittest.Fill(t, s, 10)
	s.TamperForTest(4, func(r *audit.Record) {
		r.Code = "ok"
		r.PrincipalID = ""
		r.Hash = audit.ComputeHash(*r)
	})
	audittest.WantBroken(t, s, 5, "record 5 does not follow 4's hash")
}

func TestVerifyFindsADeletedRecord(t *testing.T) {
	s := memory.New()
	audittest.Fill(t, s, 10)
	s.DeleteForTest(6)
	audittest.WantBroken(t, s, 6, "record 6 is missing")
	s.DeleteForTest(7)
	s.DeleteForTest(8)
	audittest.WantBroken(t, s, 6, "records 6..8 are missing")
}

func TestVerifyReportsTheFirstProblem(t *testing.T) {
	s := memory.New()
	audittest.Fill(t, s, 10)
	s.TamperForTest(8, func(r *audit.Record) { r.Code = "x" })
	s.TamperForTest(3, func(r *audit.Record) { r.Code = "x" })
	audittest.WantBroken(t, s, 3, "record 3's hash does not match its contents")
	s.DeleteForTest(1)
	audittest.WantBroken(t, s, 1, "record 1 is missing")
}

func TestVerifyFindsAForgedStart(t *testing.T) {
	s := memory.New()
	audittest.Fill(t, s, 2)
	s.TamperForTest(1, func(r *audit.Record) {
		r.PrevHash = make([]byte, audit.HashSize)
		r.PrevHash[0] = 1
		r.Hash = audit.ComputeHash(*r)
	})
	audittest.WantBroken(t, s, 1, "record 1 does not start the chain: its prev_hash is not 32 zero bytes")
}

func TestRegistered(t *testing.T) {
	b, err := registry.LookupBackend("audit", "memory")
	if err != nil {
		t.Fatal(err)
	}
	store, err := b.Open(t.Context(), registry.Env{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := store.(audit.Store); !ok {
		t.Fatalf("Open returned a %T, not an audit.Store", store)
	}
}

func TestVerifyFindsTheNewestRecordsDeleted(t *testing.T) {
	s := memory.New()
	audittest.Fill(t, s, 10)
	s.DeleteForTest(10)
	audittest.WantBroken(t, s, 10, "record 10 is missing")
	s.DeleteForTest(9)
	audittest.WantBroken(t, s, 9, "records 9..10 are missing")
}
