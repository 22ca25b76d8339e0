package gateway

// Fair sharing: a token bucket per principal and class of capability, so
// that one caller cannot take what the others need, and a bound on the calls
// in flight, so that a saturated gateway refuses at once what it cannot
// start rather than queueing it until its deadline. docs/reliability.md
// ("Fair sharing") says what callers and operators see.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"plinth.dev/plinth/capabilities/access"
)

// The classes of capability that rate limits are configured for: a
// contract that says mutates: true is a write, every other a read.
const (
	classRead  = "read"
	classWrite = "write"
)

// Reasons of the ErrorInfo details of fair-sharing refusals.
const (
	reasonRateLimited = "RATE_LIMITED"
	reasonOverloaded  = "OVERLOADED"
)

// retryAfterHeader carries a refusal's retry hint in whole seconds, for
// clients that do not read the RetryInfo detail (plain HTTP, curl, proxies).
const retryAfterHeader = "Retry-After"

// maxRateLimitedPrincipals bounds the principals whose buckets are kept.
// Principals are made by administrators, so a deployment has far fewer;
// the bound holds whatever happens.
const maxRateLimitedPrincipals = 10_000

// rateLimiter refuses, with ResourceExhausted and a retry hint, a call of a
// principal that is over its rate for the capability's class. It runs just
// after authentication (it needs to know who calls) and before validation
// and idempotency: a refused call claims no key and reaches no backend, and
// a caller sending malformed requests is limited like any other.
type rateLimiter struct {
	classOf   map[string]string // procedure -> classRead or classWrite
	defaults  map[string]RateLimit
	overrides map[string]PrincipalRateLimits // by principal name
	enabled   bool
	metrics   *metrics
	now       func() time.Time

	mu         sync.Mutex
	principals map[string]*principalBuckets // by principal id
	max        int
}

// principalBuckets are one principal's token buckets, one per class, nil
// for a class without a limit.
type principalBuckets struct {
	limits   map[string]RateLimit
	buckets  map[string]*rate.Limiter
	refilled time.Duration // how long an idle bucket takes to be full again
	lastUsed time.Time
}

// newRateLimiter returns the rate limiter of cfg over the capabilities whose
// procedures mutating maps to whether they mutate. With no limit configured
// it lets every call through at no cost.
func newRateLimiter(cfg RateLimitsConfig, mutating map[string]bool, m *metrics) *rateLimiter {
	l := &rateLimiter{
		classOf:    make(map[string]string, len(mutating)),
		defaults:   map[string]RateLimit{classRead: cfg.Read, classWrite: cfg.Write},
		overrides:  cfg.Principals,
		metrics:    m,
		now:        time.Now,
		principals: map[string]*principalBuckets{},
		max:        maxRateLimitedPrincipals,
	}
	for procedure, mutates := range mutating {
		l.classOf[procedure] = classRead
		if mutates {
			l.classOf[procedure] = classWrite
		}
	}
	l.enabled = cfg.Read.limited() || cfg.Write.limited()
	for _, o := range cfg.Principals {
		if (o.Read != nil && o.Read.limited()) || (o.Write != nil && o.Write.limited()) {
			l.enabled = true
		}
	}
	return l
}

// limited reports whether the limit limits anything: a rate of 0 is none.
func (r RateLimit) limited() bool { return r.Rate > 0 }

// limitsOf returns the limits of a principal: the configured classes' with
// the principal's own in place of those it overrides.
func (l *rateLimiter) limitsOf(p access.Principal) map[string]RateLimit {
	limits := map[string]RateLimit{classRead: l.defaults[classRead], classWrite: l.defaults[classWrite]}
	if o, ok := l.overrides[p.Name]; ok {
		if o.Read != nil {
			limits[classRead] = *o.Read
		}
		if o.Write != nil {
			limits[classWrite] = *o.Write
		}
	}
	return limits
}

// bucket returns the principal's bucket for class, or nil if the class is
// not limited for it, making the principal's buckets on its first call.
func (l *rateLimiter) bucket(p access.Principal, class string, now time.Time) (*rate.Limiter, RateLimit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.principals[p.ID]
	if !ok {
		if len(l.principals) >= l.max {
			l.evict(now)
		}
		b = &principalBuckets{limits: l.limitsOf(p), buckets: map[string]*rate.Limiter{}}
		for class, lim := range b.limits {
			if !lim.limited() {
				continue
			}
			burst := max(lim.Burst, 1)
			b.buckets[class] = rate.NewLimiter(rate.Limit(lim.Rate), burst)
			b.refilled = max(b.refilled, refillTime(burst, lim.Rate))
		}
		l.principals[p.ID] = b
	}
	b.lastUsed = now
	return b.buckets[class], b.limits[class]
}

// refillTime is how long an empty bucket of burst tokens takes to fill at
// perSecond tokens a second.
func refillTime(burst int, perSecond float64) time.Duration {
	seconds := float64(burst) / perSecond
	if seconds >= float64(math.MaxInt64/int64(time.Second)) {
		return math.MaxInt64
	}
	return time.Duration(seconds * float64(time.Second))
}

// evict makes room for a principal: it forgets every principal idle long
// enough for its buckets to be full again, which loses nothing (a new
// bucket starts full), and, if none is, the one idle longest, which gives
// that principal at most one more burst. Called with l.mu held.
func (l *rateLimiter) evict(now time.Time) {
	var (
		oldestID string
		oldest   time.Time
	)
	for id, b := range l.principals {
		if now.Sub(b.lastUsed) >= b.refilled {
			delete(l.principals, id)
			continue
		}
		if oldestID == "" || b.lastUsed.Before(oldest) {
			oldestID, oldest = id, b.lastUsed
		}
	}
	if len(l.principals) >= l.max && oldestID != "" {
		delete(l.principals, oldestID)
	}
}

// size returns how many principals' buckets are kept.
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.principals)
}

// admit takes a token from the caller's bucket for procedure's class, or
// returns the refusal to answer with.
func (l *rateLimiter) admit(ctx context.Context, procedure string) error {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		// Only reached behind the authenticator, which refuses a call it
		// cannot put a principal on.
		return nil
	}
	class, ok := l.classOf[procedure]
	if !ok {
		return nil
	}
	now := l.now()
	bucket, limit := l.bucket(p, class, now)
	if bucket == nil {
		return nil
	}
	r := bucket.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if r.OK() && delay == 0 {
		return nil
	}
	// Refused: the token goes back, so that a caller that keeps calling
	// while refused is not refused for longer.
	r.CancelAt(now)
	if !r.OK() {
		delay = time.Second // cannot happen with a burst of at least 1
	}
	l.metrics.rateLimited.WithLabelValues(class).Inc()
	return rateLimitedError(p, class, limit, delay)
}

// rateLimitedError is the answer to a call over its principal's rate:
// ResourceExhausted, a message that says what to do, a RetryInfo detail
// and a Retry-After header with the wait, and an ErrorInfo detail.
func rateLimitedError(p access.Principal, class string, limit RateLimit, delay time.Duration) *connect.Error {
	delay = roundUp(delay, time.Millisecond)
	rateText := strconv.FormatFloat(limit.Rate, 'g', -1, 64)
	err := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"rate limit of %s %s calls per second (bursts of up to %d) for principal %s exceeded; retry after %s",
		rateText, class, max(limit.Burst, 1), p.Name, delay))
	addRetryHint(err, delay)
	if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{
		Reason: reasonRateLimited,
		Domain: errorDomain,
		Metadata: map[string]string{
			"principal_id": p.ID,
			"class":        class,
			"rate":         rateText,
			"burst":        strconv.Itoa(max(limit.Burst, 1)),
		},
	}); derr == nil {
		err.AddDetail(d)
	}
	return err
}

// addRetryHint tells the caller when to retry, both ways clients read it:
// a google.rpc.RetryInfo detail with the exact wait (the Go SDK reads it
// first) and a Retry-After header in whole seconds, rounded up.
func addRetryHint(err *connect.Error, delay time.Duration) {
	if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); derr == nil {
		err.AddDetail(d)
	}
	seconds := max(int64(math.Ceil(delay.Seconds())), 1)
	err.Meta().Set(retryAfterHeader, strconv.FormatInt(seconds, 10))
}

func roundUp(d, unit time.Duration) time.Duration {
	if r := d % unit; r != 0 {
		d += unit - r
	}
	return max(d, unit)
}

func (l *rateLimiter) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	if !l.enabled {
		return next
	}
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := l.admit(ctx, req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (l *rateLimiter) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (l *rateLimiter) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	if !l.enabled {
		return next
	}
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := l.admit(ctx, conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// shedder bounds the capability calls in flight. A call over the bound
// waits at most limits.queue_timeout for one to finish (with at most as
// many waiting as may be in flight) and is otherwise refused at once with
// Unavailable and a retry hint: it was not started, so a retry is safe
// even for a call that changes state. It sits outside the auditor and
// inside the observer: a shed call is logged and counted but not audited
// (nobody was authenticated, nothing ran, and a record would cost the
// database a write exactly when the gateway has no room for one).
// Operators' endpoints (health, readiness, metrics, catalog, reflection)
// do not pass through it.
type shedder struct {
	slots      chan struct{} // one per call in flight; nil: no bound
	maxWaiting int64
	waiting    atomic.Int64
	wait       time.Duration
	metrics    *metrics
	log        *slog.Logger
	warn       rate.Sometimes
}

func newShedder(cfg LimitsConfig, m *metrics, log *slog.Logger) *shedder {
	s := &shedder{metrics: m, log: log, wait: max(cfg.QueueTimeout.Std(), 0), warn: rate.Sometimes{Interval: 10 * time.Second}}
	if cfg.MaxInFlight > 0 {
		s.slots = make(chan struct{}, cfg.MaxInFlight)
		s.maxWaiting = int64(cfg.MaxInFlight)
	}
	m.inFlight(func() float64 { return float64(len(s.slots)) })
	return s
}

// acquire takes a slot for a call, waiting for one at most s.wait; it
// returns the refusal to answer with when there is none.
func (s *shedder) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	if s.wait > 0 {
		if s.waiting.Add(1) <= s.maxWaiting {
			timer := time.NewTimer(s.wait)
			select {
			case s.slots <- struct{}{}:
				timer.Stop()
				s.waiting.Add(-1)
				return nil
			case <-ctx.Done():
				timer.Stop()
				s.waiting.Add(-1)
				return ctx.Err()
			case <-timer.C:
			}
		}
		s.waiting.Add(-1)
	}
	s.metrics.shed.Inc()
	s.warn.Do(func() {
		s.log.WarnContext(ctx, "shedding load: refusing capability calls over limits.max_in_flight",
			"max_in_flight", cap(s.slots), "queue_timeout", s.wait.String())
	})
	return overloadedError()
}

func (s *shedder) release() { <-s.slots }

// overloadedError is the answer to a call shed for load. The wait is
// jittered so that the callers shed together do not come back together.
func overloadedError() *connect.Error {
	delay := 100*time.Millisecond + rand.N(200*time.Millisecond)
	delay = roundUp(delay, time.Millisecond)
	err := connect.NewError(connect.CodeUnavailable, fmt.Errorf(
		"the gateway is at capacity and did not start this call; retry after %s", delay))
	addRetryHint(err, delay)
	if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: reasonOverloaded, Domain: errorDomain}); derr == nil {
		err.AddDetail(d)
	}
	return err
}

func (s *shedder) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	if s.slots == nil {
		return next
	}
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := s.acquire(ctx); err != nil {
			return nil, err
		}
		defer s.release()
		return next(ctx, req)
	}
}

func (s *shedder) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (s *shedder) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	if s.slots == nil {
		return next
	}
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := s.acquire(ctx); err != nil {
			return err
		}
		defer s.release()
		return next(ctx, conn)
	}
}
