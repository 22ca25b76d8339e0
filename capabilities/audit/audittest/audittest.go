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
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/pagetoken/pagetokentest"
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
		{"Append/NotReadableUntilChained", testNotReadableUntilChained},
		{"Chain/Batches", testChainBatches},
		{"Chain/OrderOfTime", testChainOrderOfTime},
		{"Chain/StoreRefusesOutOfSequence", testStoreRefusesOutOfSequence},
		{"Chain/FailedLinkChainsNothing", testFailedLinkChainsNothing},
		{"GetAuditRecord/Unknown", testGetUnknown},
		{"ListAuditRecords/Pages", testListPages},
		{"ListAuditRecords/Filters", testListFilters},
		{"ListAuditRecords/PageTokenOfOtherFilters", testListTokenOfOtherFilters},
		{"ListAuditRecords/ForgedPageTokens", testListForgedTokens},
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

// Fill appends n records of Entry(0) to Entry(n-1), a microsecond apart
// so that they chain in that order, chains them and returns them as
// chained.
func Fill(t testing.TB, store audit.Store, n int) []audit.Record {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Microsecond)
	svc := audit.NewService(store, audit.WithClock(func() time.Time {
		at = at.Add(time.Microsecond)
		return at
	}))
	added := make([]audit.Record, n)
	for i := range n {
		r, err := svc.Append(t.Context(), Entry(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		added[i] = r
	}
	if _, err := svc.Chain(t.Context()); err != nil {
		t.Fatalf("Chain: %v", err)
	}
	out := make([]audit.Record, n)
	for i, a := range added {
		r, err := store.Get(t.Context(), a.ID)
		if err != nil {
			t.Fatalf("Get %d after Chain: %v", i, err)
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
		ID: r.ID, Time: at.UTC().Truncate(time.Microsecond),
		Capability: e.Capability, Code: e.Code,
	}
	wantRecord(t, "Append", r, want) // added, not chained
	want.Sequence, want.PrevHash = 1, make([]byte, audit.HashSize)
	want.Hash = audit.ComputeHash(want)
	// GetAuditRecord chains what waits first.
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
	if _, err := svc.Chain(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored, err := store.Get(t.Context(), r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	r2.Sequence, r2.PrevHash = 2, want.Hash
	r2.Hash = audit.ComputeHash(r2)
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
				// Some chain as they go, as the chainers of several
				// gateways and the readers of the chain do.
				if (g+i)%4 == 0 {
					if _, err := svc.Chain(t.Context()); err != nil {
						errs <- err
					}
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

// testNotReadableUntilChained: an added record is stored, but it is not
// part of the chain, nor readable from the store, until chained.
func testNotReadableUntilChained(t *testing.T, store audit.Store) {
	svc := audit.NewService(store)
	r, err := svc.Append(t.Context(), Entry(0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Sequence != 0 || r.Hash != nil || r.PrevHash != nil {
		t.Errorf("Append = %+v, want a record not chained yet", r)
	}
	if _, err := store.Get(t.Context(), r.ID); !errors.As(err, new(*domainerr.NotFoundError)) {
		t.Errorf("Get of an added record before Chain = %v, want not found", err)
	}
	if last, err := store.LastSequence(t.Context()); err != nil || last != 0 {
		t.Errorf("LastSequence before Chain = %d, %v; want 0", last, err)
	}
	if n, err := svc.Chain(t.Context()); n != 1 || err != nil {
		t.Fatalf("Chain = %d, %v; want 1 record chained", n, err)
	}
	if got, err := store.Get(t.Context(), r.ID); err != nil || got.Sequence != 1 {
		t.Errorf("Get after Chain = %+v, %v; want record 1", got, err)
	}
	if n, err := svc.Chain(t.Context()); n != 0 || err != nil {
		t.Errorf("Chain with nothing waiting = %d, %v; want 0", n, err)
	}
}

// testChainBatches: Store.Chain links at most its limit, oldest first, and
// the next call goes on from there.
func testChainBatches(t *testing.T, store audit.Store) {
	Fill(t, store, 1)
	at := time.Now().UTC().Truncate(time.Microsecond)
	svc := audit.NewService(store, audit.WithClock(func() time.Time { at = at.Add(time.Microsecond); return at }))
	var added []string
	for i := range 5 {
		r, err := svc.Append(t.Context(), Entry(i))
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, r.ID)
	}
	var got [][]string
	for _, want := range []int{2, 2, 1, 0} {
		var seen []string
		n, err := store.Chain(t.Context(), 2, func(last *audit.Record, pending []audit.Record) ([]audit.Record, error) {
			if last == nil {
				t.Fatal("link was given no last record; the chain has some")
			}
			seq, prev := last.Sequence, last.Hash
			out := make([]audit.Record, len(pending))
			for i, p := range pending {
				seen = append(seen, p.ID)
				seq++
				p.Sequence, p.PrevHash = seq, prev
				p.Hash = audit.ComputeHash(p)
				out[i], prev = p, p.Hash
			}
			return out, nil
		})
		if err != nil || n != want {
			t.Fatalf("Chain(limit 2) = %d, %v; want %d", n, err, want)
		}
		got = append(got, seen)
	}
	if flat := slices.Concat(got...); !slices.Equal(flat, added) {
		t.Errorf("chained %v, want the records in the order added %v", got, added)
	}
	WantOK(t, store, 6)
}

// testChainOrderOfTime: records are chained in the order of their time,
// whatever the order they were added in (the records of calls that commit
// out of order).
func testChainOrderOfTime(t *testing.T, store audit.Store) {
	base := time.Now().UTC().Truncate(time.Second)
	var ids []string
	for _, offset := range []int{3, 1, 2} {
		at := base.Add(time.Duration(offset) * time.Millisecond)
		r, err := audit.NewService(store, audit.WithClock(func() time.Time { return at })).Append(t.Context(), Entry(offset))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if _, err := audit.NewService(store).Chain(t.Context()); err != nil {
		t.Fatal(err)
	}
	var chained []string
	if err := store.Scan(t.Context(), func(r audit.Record) error { chained = append(chained, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{ids[1], ids[2], ids[0]}; !slices.Equal(chained, want) {
		t.Errorf("chained %v, want %v (by time)", chained, want)
	}
}

func testStoreRefusesOutOfSequence(t *testing.T, store audit.Store) {
	Fill(t, store, 2)
	svc := audit.NewService(store)
	if _, err := svc.Append(t.Context(), Entry(9)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name      string
		mangle    func([]audit.Record) []audit.Record
		got, want int64
	}{
		{"sequence taken", func(rs []audit.Record) []audit.Record { rs[0].Sequence = 2; return rs }, 2, 3},
		{"sequence skipped", func(rs []audit.Record) []audit.Record { rs[0].Sequence = 4; return rs }, 4, 3},
		{"another record", func(rs []audit.Record) []audit.Record { rs[0].ID = "aud_00000000000000000000000009"; return rs }, 3, 3},
		{"one too many", func(rs []audit.Record) []audit.Record { return append(rs, rs[0]) }, 2, 1},
	} {
		n, err := store.Chain(t.Context(), 10, func(last *audit.Record, pending []audit.Record) ([]audit.Record, error) {
			rs := make([]audit.Record, len(pending))
			for i, p := range pending {
				p.Sequence, p.PrevHash = last.Sequence+1+int64(i), last.Hash
				p.Hash = audit.ComputeHash(p)
				rs[i] = p
			}
			return bad.mangle(rs), nil
		})
		var oos *audit.OutOfSequenceError
		if n != 0 || !errors.As(err, &oos) || oos.Got != bad.got || oos.Want != bad.want {
			t.Errorf("%s: Chain = %d, %v; want 0 and *OutOfSequenceError{Got: %d, Want: %d}", bad.name, n, err, bad.got, bad.want)
		}
	}
	WantOK(t, store, 3) // the record still waited, and chains as it should
}

func testFailedLinkChainsNothing(t *testing.T, store audit.Store) {
	Fill(t, store, 1)
	svc := audit.NewService(store)
	if _, err := svc.Append(t.Context(), Entry(5)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var gotLast *audit.Record
	var gotPending int
	n, err := store.Chain(t.Context(), 10, func(last *audit.Record, pending []audit.Record) ([]audit.Record, error) {
		gotLast, gotPending = last, len(pending)
		return nil, boom
	})
	if n != 0 || !errors.Is(err, boom) {
		t.Errorf("Chain = %d, %v; want link's error", n, err)
	}
	if gotLast == nil || gotLast.Sequence != 1 || gotPending != 1 {
		t.Errorf("link was given %+v and %d waiting, want record 1 and 1", gotLast, gotPending)
	}
	records := Fill(t, store, 1)
	if records[0].Sequence != 3 {
		t.Errorf("the record after a failed Chain got sequence %d, want 3 (the waiting one is 2)", records[0].Sequence)
	}
	WantOK(t, store, 3)
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

// testListForgedTokens: page tokens are signed. A token altered anywhere,
// or made under another deployment's key, is refused and never trusted as
// a place to resume from; a token from another gateway of the same
// deployment (another Service with the same key) gives the same next page.
func testListForgedTokens(t *testing.T, store audit.Store) {
	Fill(t, store, 4)
	codec := func(key []byte) *pagetoken.Codec {
		c, err := pagetoken.NewCodec(key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	svc := audit.NewService(store, audit.WithPageTokens(codec(pagetokentest.Key)))
	gatewayB := audit.NewService(store, audit.WithPageTokens(codec(pagetokentest.Key)))
	otherDeployment := audit.NewService(store, audit.WithPageTokens(codec(pagetokentest.OtherKey)))
	list := func(svc *audit.Service, token string) (*auditv1.ListAuditRecordsResponse, error) {
		res, err := svc.ListAuditRecords(t.Context(), connect.NewRequest(&auditv1.ListAuditRecordsRequest{PageSize: 1, PageToken: token}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	wantRefused := func(what string, err error) {
		t.Helper()
		if k, _ := domainerr.KindOf(err); k != domainerr.KindInvalidArgument {
			t.Fatalf("%s: %v, want an invalid page token", what, err)
		}
	}
	first, err := list(svc, "")
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("page 1: %v, %v; want a next_page_token", first, err)
	}
	for _, forged := range pagetokentest.Altered(first.GetNextPageToken()) {
		_, err := list(svc, forged)
		wantRefused("an altered token", err)
	}
	theirs, err := list(otherDeployment, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = list(svc, theirs.GetNextPageToken())
	wantRefused("another deployment's token", err)
	onB, err := list(gatewayB, first.GetNextPageToken())
	if err != nil {
		t.Fatalf("another gateway of the deployment refused the token: %v", err)
	}
	if got := onB.GetAuditRecords(); len(got) != 1 || got[0].GetSequence() != 2 {
		t.Fatalf("page 2 on another gateway = %v, want record 2", got)
	}
}
