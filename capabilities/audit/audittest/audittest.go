// Package audittest is the conformance suite every audit backend must pass,
// and helpers for the tests of each backend that prove tampering shows.
package audittest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/domainerr"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
)

// Run runs the conformance suite against the Store that newStore returns.
// newStore is called once per subtest, possibly from several subtests at
// once, and must return an empty store of its own each time.
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, audit.Store)
	}{
		{"Append/Chains", testAppendChains},
		{"Append/RoundTrip", testAppendRoundTrip},
		{"Append/EntryRequiresCapabilityAndCode", testAppendInvalidEntry},
		{"Append/Concurrent", testConcurrentAppends},
		{"Append/StoreRefusesOutOfSequence", testStoreRefusesOutOfSequence},
		{"Append/FailedNextStoresNothing", testFailedNextStoresNothing},
		{"GetAuditRecord/Unknown", testGetUnknown},
		{"ListAuditRecords/Pages", testListPages},
		{"ListAuditRecords/Filters", testListFilters},
		{"ListAuditRecords/PageTokenOfOtherFilters", testListTokenOfOtherFilters},
		{"VerifyAuditChain/Empty", testVerifyEmpty},
		{"VerifyAuditChain/Untouched", testVerifyUntouched},
		{"Store/ResultsNotShared", testResultsNotShared},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newStore(t))
		})
	}
}

// Entry returns the i-th of a set of distinct entries.
func Entry(i int) audit.Entry {
	return audit.Entry{
		PrincipalID: fmt.Sprintf("prn_%026d", i%3),
		Capability:  fmt.Sprintf("/plinth.test.v1.TestService/Call%d", i%2),
		Code:        "ok",
		ResourceIDs: []string{fmt.Sprintf("cus_%026d", i)},
		Revealed:    []string{"pii"},
		RequestID:   fmt.Sprintf("req-%d", i),
	}
}

// Fill appends n records of Entry(0) to Entry(n-1) and returns them.
func Fill(t testing.TB, store audit.Store, n int) []audit.Record {
	t.Helper()
	svc := audit.NewService(store)
	out := make([]audit.Record, n)
	for i := range n {
		r, err := svc.Append(t.Context(), Entry(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out[i] = r
	}
	return out
}

// Verify returns what VerifyAuditChain answers over store.
func Verify(t testing.TB, store audit.Store) *auditv1.VerifyAuditChainResponse {
	t.Helper()
	res, err := audit.NewService(store).VerifyAuditChain(t.Context(), connect.NewRequest(&auditv1.VerifyAuditChainRequest{}))
	if err != nil {
		t.Fatalf("VerifyAuditChain: %v", err)
	}
	return res.Msg
}

// WantBroken fails the test unless VerifyAuditChain over store reports
// that the chain first breaks at seq, with a problem that says problem.
func WantBroken(t testing.TB, store audit.Store, seq int64, problem string) {
	t.Helper()
	v := Verify(t, store)
	if v.GetOk() || v.GetFirstBrokenSequence() != seq || v.GetProblem() != problem {
		t.Fatalf("VerifyAuditChain = {ok: %v, first broken: %d, problem: %q}, want {ok: false, first broken: %d, problem: %q}",
			v.GetOk(), v.GetFirstBrokenSequence(), v.GetProblem(), seq, problem)
	}
}

// WantOK fails the test unless VerifyAuditChain over store finds n records
// and no problem.
func WantOK(t testing.TB, store audit.Store, n int64) {
	t.Helper()
	v := Verify(t, store)
	if !v.GetOk() || v.GetRecordsChecked() != n || v.GetFirstBrokenSequence() != 0 || v.GetProblem() != "" {
		t.Fatalf("VerifyAuditChain = %v, want ok with %d records checked", v, n)
	}
}

func testAppendChains(t *testing.T, store audit.Store) {
	records := Fill(t, store, 5)
	prev := make([]byte, audit.HashSize)
	for i, r := range records {
		if r.Sequence != int64(i+1) {
			t.Errorf("record %d has sequence %d", i+1, r.Sequence)
		}
		if !bytes.Equal(r.PrevHash, prev) {
			t.Errorf("record %d: prev_hash %x, want the previous hash %x", r.Sequence, r.PrevHash, prev)
		}
		if !bytes.Equal(r.Hash, audit.ComputeHash(r)) || len(r.Hash) != audit.HashSize {
			t.Errorf("record %d: hash %x, want ComputeHash %x", r.Sequence, r.Hash, audit.ComputeHash(r))
		}
		if !strings.HasPrefix(r.ID, "aud_") || len(r.ID) != 30 {
			t.Errorf("record %d: id %q, want aud_ and a ULID", r.Sequence, r.ID)
		}
		prev = r.Hash
	}
}

func testAppendRoundTrip(t *testing.T, store audit.Store) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	svc := audit.NewService(store, audit.WithClock(func() time.Time { return at }))
	e := audit.Entry{
		Capability:  "/plinth.access.v1.AccessService/IssueApiKey",
		Code:        "unauthenticated",
		ResourceIDs: []string{},
	}
	r, err := svc.Append(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Record{
		ID: r.ID, Sequence: 1, Time: at.UTC().Truncate(time.Microsecond),
		Capability: e.Capability, Code: e.Code,
		PrevHash: make([]byte, audit.HashSize),
	}
	want.Hash = audit.ComputeHash(want)
	wantRecord(t, "Append", r, want)
	res, err := svc.GetAuditRecord(t.Context(), connect.NewRequest(&auditv1.GetAuditRecordRequest{RecordId: r.ID}))
	if err != nil {
		t.Fatal(err)
	}
	got := res.Msg.GetAuditRecord()
	wantProto := &auditv1.AuditRecord{
		Id: r.ID, Sequence: 1, Capability: e.Capability, Code: e.Code,
		PrevHash: want.PrevHash, Hash: want.Hash,
	}
	if !got.GetTime().AsTime().Equal(want.Time) {
		t.Errorf("GetAuditRecord time = %v, want %v", got.GetTime().AsTime(), want.Time)
	}
	got.Time = nil
	if !proto.Equal(got, wantProto) {
		t.Errorf("GetAuditRecord = %v, want %v", got, wantProto)
	}

	// Every field, lists included, survives the store.
	full := Entry(7)
	r2, err := svc.Append(t.Context(), full)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := store.Get(t.Context(), r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, "Get", stored, r2)
	if stored.PrincipalID != full.PrincipalID || !slices.Equal(stored.ResourceIDs, full.ResourceIDs) ||
		!slices.Equal(stored.Revealed, full.Revealed) || stored.RequestID != full.RequestID {
		t.Errorf("Get = %+v, want the fields of %+v", stored, full)
	}
}

func testAppendInvalidEntry(t *testing.T, store audit.Store) {
	svc := audit.NewService(store)
	for _, e := range []audit.Entry{{Code: "ok"}, {Capability: "/x.v1.S/M"}} {
		_, err := svc.Append(t.Context(), e)
		if k, _ := domainerr.KindOf(err); k != domainerr.KindInvalidArgument {
			t.Errorf("Append(%+v) = %v, want an invalid argument", e, err)
		}
	}
	WantOK(t, store, 0)
}

func testConcurrentAppends(t *testing.T, store audit.Store) {
	const goroutines, each = 16, 20
	svc := audit.NewService(store)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, goroutines*each)
	)
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range each {
				if _, err := svc.Append(t.Context(), Entry(g*each+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Append: %v", err)
	}
	WantOK(t, store, goroutines*each)
	var seqs []int64
	requests := map[string]bool{}
	if err := store.Scan(t.Context(), func(r audit.Record) error {
		seqs = append(seqs, r.Sequence)
		requests[r.RequestID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("Scan: record %d has sequence %d", i+1, s)
		}
	}
	if len(seqs) != goroutines*each || len(requests) != goroutines*each {
		t.Fatalf("Scan: %d records of %d requests, want %d of each", len(seqs), len(requests), goroutines*each)
	}
}

func testStoreRefusesOutOfSequence(t *testing.T, store audit.Store) {
	Fill(t, store, 2)
	for _, seq := range []int64{2, 4} {
		_, err := store.Append(t.Context(), func(last *audit.Record) (audit.Record, error) {
			r := audit.Record{ID: fmt.Sprintf("aud_%026d", seq), Sequence: seq, Time: time.Now(), Capability: "/x.v1.S/M", Code: "ok", PrevHash: last.Hash}
			r.Hash = audit.ComputeHash(r)
			return r, nil
		})
		var oos *audit.OutOfSequenceError
		if !errors.As(err, &oos) || oos.Got != seq || oos.Want != 3 {
			t.Errorf("Append of sequence %d after 2 = %v, want *OutOfSequenceError{Got: %d, Want: 3}", seq, err, seq)
		}
	}
	WantOK(t, store, 2)
}

func testFailedNextStoresNothing(t *testing.T, store audit.Store) {
	Fill(t, store, 1)
	boom := errors.New("boom")
	var gotLast *audit.Record
	_, err := store.Append(t.Context(), func(last *audit.Record) (audit.Record, error) {
		gotLast = last
		return audit.Record{}, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Append = %v, want next's error", err)
	}
	if gotLast == nil || gotLast.Sequence != 1 {
		t.Errorf("next was given %+v, want record 1", gotLast)
	}
	records := Fill(t, store, 1)
	if records[0].Sequence != 2 {
		t.Errorf("the append after a failed one got sequence %d, want 2", records[0].Sequence)
	}
}

func testGetUnknown(t *testing.T, store audit.Store) {
	const id = "aud_00000000000000000000000000"
	_, err := audit.NewService(store).GetAuditRecord(t.Context(), connect.NewRequest(&auditv1.GetAuditRecordRequest{RecordId: id}))
	var nf *domainerr.NotFoundError
	if !errors.As(err, &nf) || nf.ID != id {
		t.Fatalf("GetAuditRecord of an unknown id = %v, want *domainerr.NotFoundError of %s", err, id)
	}
}

// list returns every page ListAuditRecords gives for req, as sequences.
func list(t *testing.T, svc *audit.Service, req *auditv1.ListAuditRecordsRequest) [][]int64 {
	t.Helper()
	var pages [][]int64
	for {
		res, err := svc.ListAuditRecords(t.Context(), connect.NewRequest(req))
		if err != nil {
			t.Fatalf("ListAuditRecords: %v", err)
		}
		var page []int64
		for _, r := range res.Msg.GetAuditRecords() {
			page = append(page, r.GetSequence())
		}
		pages = append(pages, page)
		if res.Msg.GetNextPageToken() == "" {
			return pages
		}
		if len(pages) > 1000 {
			t.Fatal("ListAuditRecords never ends")
		}
		req.PageToken = res.Msg.GetNextPageToken()
	}
}

func testListPages(t *testing.T, store audit.Store) {
	Fill(t, store, 7)
	svc := audit.NewService(store)
	want := []int64{1, 2, 3, 4, 5, 6, 7}
	for _, size := range []int32{1, 2, 3, 6, 7, 8, 0, 200} {
		pages := list(t, svc, &auditv1.ListAuditRecordsRequest{PageSize: size})
		got := slices.Concat(pages...)
		if !slices.Equal(got, want) {
			t.Fatalf("page size %d: listed %v, want %v", size, got, want)
		}
		limit := int(size)
		if size == 0 {
			limit = audit.DefaultPageSize
		}
		for i, p := range pages {
			if len(p) > limit || (i < len(pages)-1 && len(p) != limit) || (len(p) == 0 && len(pages) > 1) {
				t.Fatalf("page size %d: pages %v", size, pages)
			}
		}
	}
}

func testListFilters(t *testing.T, store audit.Store) {
	Fill(t, store, 12) // principal i%3, capability i%2, sequence i+1
	svc := audit.NewService(store)
	p1, c0, nobody := Entry(1).PrincipalID, Entry(0).Capability, ""
	for _, tc := range []struct {
		name      string
		principal *string
		cap       *string
		want      []int64
	}{
		{"principal", &p1, nil, []int64{2, 5, 8, 11}},
		{"capability", nil, &c0, []int64{1, 3, 5, 7, 9, 11}},
		{"both", &p1, &c0, []int64{5, 11}},
		{"no principal", &nobody, nil, nil},
	} {
		for _, size := range []int32{1, 3, 0} {
			got := slices.Concat(list(t, svc, &auditv1.ListAuditRecordsRequest{PageSize: size, PrincipalId: tc.principal, Capability: tc.cap})...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s, page size %d: listed %v, want %v", tc.name, size, got, tc.want)
			}
		}
	}
}

func testListTokenOfOtherFilters(t *testing.T, store audit.Store) {
	Fill(t, store, 4)
	svc := audit.NewService(store)
	p0 := Entry(0).PrincipalID
	res, err := svc.ListAuditRecords(t.Context(), connect.NewRequest(&auditv1.ListAuditRecordsRequest{PageSize: 1, PrincipalId: &p0}))
	if err != nil {
		t.Fatal(err)
	}
	token := res.Msg.GetNextPageToken()
	if token == "" {
		t.Fatal("no next page token")
	}
	for _, req := range []*auditv1.ListAuditRecordsRequest{
		{PageToken: token},
		{PageToken: token, Capability: &p0},
		{PageToken: "garbage"},
	} {
		_, err := svc.ListAuditRecords(t.Context(), connect.NewRequest(req))
		if k, _ := domainerr.KindOf(err); k != domainerr.KindInvalidArgument {
			t.Errorf("ListAuditRecords(%v) = %v, want an invalid page token", req, err)
		}
	}
}

func testVerifyEmpty(t *testing.T, store audit.Store) {
	WantOK(t, store, 0)
}

func testVerifyUntouched(t *testing.T, store audit.Store) {
	Fill(t, store, 25)
	WantOK(t, store, 25)
}

func testResultsNotShared(t *testing.T, store audit.Store) {
	r := Fill(t, store, 1)[0]
	r.Hash[0] ^= 0xff
	r.ResourceIDs[0] = "changed"
	got, err := store.Get(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.PrevHash[0] ^= 0xff
	got.Revealed[0] = "changed"
	WantOK(t, store, 1)
}

func wantRecord(t *testing.T, what string, got, want audit.Record) {
	t.Helper()
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		t.Errorf("%s: time %v, want %v in UTC", what, got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}
