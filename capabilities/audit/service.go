package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/ids"
	"plinth.dev/plinth/internal/pagetoken"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
)

// Service appends to the chain (Append, for the gateway) and implements the
// audit capabilities over a Store.
type Service struct {
	store  Store
	now    func() time.Time
	tokens *pagetoken.Codec
}

var _ auditv1connect.AuditServiceHandler = (*Service)(nil)

// Option configures a Service.
type Option interface{ apply(*Service) }

type optionFunc func(*Service)

func (f optionFunc) apply(s *Service) { f(s) }

// WithClock makes the Service read the time of each record from now. It
// defaults to time.Now.
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

// NewService returns the audit capabilities over store.
func NewService(store Store, opts ...Option) *Service {
	s := &Service{store: store, now: time.Now, tokens: pagetoken.NewEphemeralCodec()}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

// Append records one capability call and returns the record as added
// (its lists are e's own, not copies): not chained yet (Sequence 0, no
// hashes), but stored, and chained by the
// next Chain (the gateway runs RunChainer; every read of the chain chains
// first). The gateway calls it once per call, after the outcome is known,
// whatever it is; e.Capability and e.Code are required (a
// *domainerr.InvalidArgumentError otherwise).
//
// On the PostgreSQL backend the record joins the transaction ctx carries,
// if any, or the batch (see Store.Add): the gateway appends the record of
// a call that changes state with that call's answer, in its transaction,
// so the effect and its record commit together, and appends every other
// record with a ctx that carries none, so that it commits on its own.
func (s *Service) Append(ctx context.Context, e Entry) (Record, error) {
	switch {
	case e.Capability == "":
		return Record{}, &domainerr.InvalidArgumentError{Field: "capability", Description: "is required"}
	case e.Code == "":
		return Record{}, &domainerr.InvalidArgumentError{Field: "code", Description: "is required"}
	}
	// The lists are e's, not copies: Store.Add keeps a copy of its own
	// (or writes them out), so what the caller does with them later
	// changes nothing stored.
	r := Record{
		ID:          ids.New("aud"),
		Time:        s.now().UTC().Truncate(time.Microsecond),
		PrincipalID: e.PrincipalID,
		Capability:  e.Capability,
		Code:        e.Code,
		ResourceIDs: nilIfEmpty(e.ResourceIDs),
		Revealed:    nilIfEmpty(e.Revealed),
		RequestID:   e.RequestID,
	}
	if err := s.store.Add(ctx, r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// chainBatch is how many records one Store.Chain links: enough that a
// backlog clears in few transactions, few enough that one holds the
// chain's lock briefly.
const chainBatch = 500

// Chain links every record added so far onto the chain, in batches, and
// returns how many it linked. Records are chained in the order of their
// time (then id), so a record's place in the chain is close to, but not
// always exactly, the order in which calls ended: two calls that end at
// once are chained in either order.
func (s *Service) Chain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.store.Chain(ctx, chainBatch, link)
		total += n
		if err != nil || n < chainBatch {
			return total, err
		}
	}
}

// link gives pending records their places after last.
func link(last *Record, pending []Record) ([]Record, error) {
	seq, prev := int64(1), make([]byte, HashSize)
	if last != nil {
		seq, prev = last.Sequence+1, last.Hash
	}
	linked := make([]Record, len(pending))
	for i, p := range pending {
		// A copy of p's fields; its lists stay shared with p, which the
		// store is about to drop (see Store.Chain).
		r := p
		r.Sequence, r.PrevHash = seq, append([]byte(nil), prev...)
		r.Hash = ComputeHash(r)
		linked[i] = r
		seq, prev = seq+1, r.Hash
	}
	return linked, nil
}

// RunChainer chains the records added, every interval, until ctx ends,
// and reports each failure to onError (a store that is down is retried
// at the next tick). Records wait at most about an interval to be chained;
// until then they are stored but not tamper-evident, and reads of the
// chain chain them first anyway.
func (s *Service) RunChainer(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Chain(ctx); err != nil && ctx.Err() == nil {
			onError(err)
		}
	}
}

// Verify chains the records waiting, then walks the whole chain in
// sequence order and reports the first problem: a gap in the sequence, a record whose hash does not match its
// contents, or one whose PrevHash is not the previous record's hash. It
// stops there. An error means the chain could not be read, not that it is
// broken.
func (s *Service) Verify(ctx context.Context) (Verification, error) {
	if _, err := s.Chain(ctx); err != nil {
		return Verification{}, err
	}
	check := newChainCheck()
	err := s.store.Scan(ctx, func(r Record) error {
		if !check.add(r) {
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return Verification{}, err
	}
	if !check.v.OK {
		return check.v, nil
	}
	// The chain is whole as far as it goes: does it go as far as the head
	// says records were appended?
	last, err := s.store.LastSequence(ctx)
	if err != nil {
		return Verification{}, err
	}
	if seen := check.next - 1; last > seen {
		check.v.OK = false
		check.v.FirstBrokenSequence = seen + 1
		if last == seen+1 {
			check.v.Problem = fmt.Sprintf("record %d is missing", seen+1)
		} else {
			check.v.Problem = fmt.Sprintf("records %d..%d are missing", seen+1, last)
		}
	}
	return check.v, nil
}

var errStopScan = errors.New("audit: the chain is broken; stop")

// ListAuditRecords returns a page of records in sequence order.
func (s *Service) ListAuditRecords(ctx context.Context, req *connect.Request[auditv1.ListAuditRecordsRequest]) (*connect.Response[auditv1.ListAuditRecordsResponse], error) {
	m := req.Msg
	q := Query{PrincipalID: m.PrincipalId, Capability: m.Capability}
	filter := listFilter(q)
	after, err := s.tokens.Decode(ctx, "page_token", filter, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	if after != "" {
		if q.AfterSequence, err = strconv.ParseInt(after, 10, 64); err != nil || q.AfterSequence < 0 {
			return nil, &domainerr.InvalidArgumentError{Field: "page_token", Description: "is not a token this service issued"}
		}
	}
	if _, err := s.Chain(ctx); err != nil {
		return nil, err
	}
	size := pagetoken.Size(m.GetPageSize())
	q.Limit = size + 1 // one more than the page, to know whether another follows
	found, err := s.store.List(ctx, q)
	if err != nil {
		return nil, err
	}
	res := &auditv1.ListAuditRecordsResponse{}
	if len(found) > size {
		found = found[:size]
		if res.NextPageToken, err = s.tokens.Encode(ctx, filter, strconv.FormatInt(found[size-1].Sequence, 10)); err != nil {
			return nil, err
		}
	}
	res.AuditRecords = make([]*auditv1.AuditRecord, len(found))
	for i, r := range found {
		res.AuditRecords[i] = recordToProto(r)
	}
	return connect.NewResponse(res), nil
}

// listFilter names the filters of q for its page tokens, telling an absent
// filter from an empty one.
func listFilter(q Query) string {
	f := "ListAuditRecords"
	if q.PrincipalID != nil {
		f += "\x00principal=" + *q.PrincipalID
	}
	if q.Capability != nil {
		f += "\x00capability=" + *q.Capability
	}
	return f
}

// GetAuditRecord returns one record by id.
func (s *Service) GetAuditRecord(ctx context.Context, req *connect.Request[auditv1.GetAuditRecordRequest]) (*connect.Response[auditv1.GetAuditRecordResponse], error) {
	if _, err := s.Chain(ctx); err != nil {
		return nil, err
	}
	r, err := s.store.Get(ctx, req.Msg.GetRecordId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&auditv1.GetAuditRecordResponse{AuditRecord: recordToProto(r)}), nil
}

// VerifyAuditChain checks the whole chain (see Verify).
func (s *Service) VerifyAuditChain(ctx context.Context, _ *connect.Request[auditv1.VerifyAuditChainRequest]) (*connect.Response[auditv1.VerifyAuditChainResponse], error) {
	v, err := s.Verify(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&auditv1.VerifyAuditChainResponse{
		Ok:                  v.OK,
		RecordsChecked:      v.RecordsChecked,
		FirstBrokenSequence: v.FirstBrokenSequence,
		Problem:             v.Problem,
	}), nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
