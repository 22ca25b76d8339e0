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

// The store keeps its chain in blocks of records: reads, tampering and
// deletion work the same on either side of a block's edge, and a Scan that
// started before a tampering still sees what was there.
func TestChainAcrossBlocks(t *testing.T) {
	const n = 2500 // three blocks, the last one part full
	s := memory.New()
	want := audittest.Fill(t, s, n)
	audittest.WantOK(t, s, n)
	for _, seq := range []int64{1, 1024, 1025, 2048, 2049, n} {
		r, err := s.Get(t.Context(), want[seq-1].ID)
		if err != nil || r.Sequence != seq || r.RequestID != want[seq-1].RequestID {
			t.Fatalf("Get(record %d) = %d %q, %v; want that record", seq, r.Sequence, r.RequestID, err)
		}
	}
	page, err := s.List(t.Context(), audit.Query{AfterSequence: 1020, Limit: 10})
	if err != nil || len(page) != 10 || page[0].Sequence != 1021 || page[9].Sequence != 1030 {
		t.Fatalf("List after 1020 = %d records from %v, %v; want 1021..1030", len(page), page, err)
	}

	var scanned []audit.Record
	if err := s.Scan(t.Context(), func(r audit.Record) error {
		if len(scanned) == 0 {
			// A tampering while a Scan runs does not change what it reads.
			s.TamperForTest(1500, func(r *audit.Record) { r.Code = "internal" })
		}
		scanned = append(scanned, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(scanned) != n || scanned[1499].Code != want[1499].Code {
		t.Fatalf("Scan read %d records, record 1500's code %q; want %d, %q", len(scanned), scanned[1499].Code, n, want[1499].Code)
	}
	audittest.WantBroken(t, s, 1500, "record 1500's hash does not match its contents")

	s.DeleteForTest(1024)
	audittest.WantBroken(t, s, 1024, "record 1024 is missing")
	if _, err := s.Get(t.Context(), want[2048].ID); err != nil {
		t.Fatalf("Get(record 2049) after a deletion: %v", err)
	}
}
