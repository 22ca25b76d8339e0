package plinth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// RetryPolicy says how a Client retries a call that failed in a way a
// retry may cure (see IsRetryable): at most MaxAttempts sends in all,
// waiting before each retry a random time below a bound that starts at
// InitialBackoff and doubles each time, up to MaxBackoff ("exponential
// backoff with full jitter", so that callers that failed together do not
// retry together).
//
// A call is retried only when sending it again cannot apply it twice:
// a capability that changes state is retried with the same
// Idempotency-Key, so the gateway runs it at most once; a capability that
// only reads is retried as it is. A wait that would outlast the call's
// context is not started: the call returns the last error at once. When
// the context is done during a wait, the call returns an error of code
// Canceled or DeadlineExceeded that names the last attempt's error.
//
// ResourceExhausted is retried only when the server says when to retry
// (a google.rpc.RetryInfo detail or a Retry-After header): Plinth's gateway
// answers it for a request too large to accept, which a retry cannot
// cure. A server's wait is used instead of the backoff; one longer than
// MaxBackoff ends the retries.
type RetryPolicy struct {
	// MaxAttempts is how many times a call is sent at most, the first
	// included: 1 means never retry.
	MaxAttempts int
	// InitialBackoff bounds the wait before the first retry.
	InitialBackoff time.Duration
	// MaxBackoff bounds every wait.
	MaxBackoff time.Duration
}

// DefaultRetryPolicy returns the policy of a Client made without
// WithRetry or WithoutRetries: 4 attempts, waits bounded by 100ms, 200ms
// and 400ms, never more than 2s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 4, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
}

// check refuses a policy with negative or inconsistent fields.
func (p RetryPolicy) check() error {
	if p.MaxAttempts < 0 || p.InitialBackoff < 0 || p.MaxBackoff < 0 {
		return fmt.Errorf("plinth: retry policy %+v has a negative field", p)
	}
	if p.InitialBackoff > 0 && p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff {
		return fmt.Errorf("plinth: retry policy's InitialBackoff %v is above its MaxBackoff %v", p.InitialBackoff, p.MaxBackoff)
	}
	return nil
}

// withDefaults fills the zero fields of p from DefaultRetryPolicy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = d.InitialBackoff
		if p.MaxBackoff > 0 {
			p.InitialBackoff = min(p.InitialBackoff, p.MaxBackoff)
		}
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(d.MaxBackoff, p.InitialBackoff)
	}
	return p
}

// backoff returns the wait before retry number n (1 for the first retry):
// random, below min(MaxBackoff, InitialBackoff·2ⁿ⁻¹).
func (p RetryPolicy) backoff(n int) time.Duration {
	bound := min(p.InitialBackoff, p.MaxBackoff)
	for i := 1; i < n && bound < p.MaxBackoff; i++ {
		bound = min(bound, p.MaxBackoff/2) * 2
	}
	if bound <= 0 {
		return 0
	}
	return rand.N(bound)
}

// IsRetryable reports whether sending the same call again, with the same
// Idempotency-Key for one that changes state, may succeed where err
// failed: the gateway or the network was unavailable (Unavailable), a call
// with the same key was still running or lost a race (Aborted), the call
// ran out of time (DeadlineExceeded; retry with a fresh deadline), or the
// server said when to retry (ResourceExhausted with a retry hint). Every
// other error is an answer: retrying would get it again.
//
// A Client retries such errors itself, as its RetryPolicy says; IsRetryable
// is for deciding what to do once those retries are spent.
func IsRetryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeAborted, connect.CodeDeadlineExceeded:
		return true
	case connect.CodeResourceExhausted:
		_, hinted := retryHint(err)
		return hinted
	}
	return false
}

// retrier retries unary calls as its policy says. It must run inside the
// interceptor that sets idempotency keys, so that every attempt of a call
// carries the same key.
type retrier struct{ policy RetryPolicy }

func (r retrier) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		safe := safeToRetry(req)
		for attempt := 1; ; attempt++ {
			res, err := next(ctx, req)
			if err == nil || !safe || attempt >= r.policy.MaxAttempts {
				return res, err
			}
			wait, ok := r.wait(ctx, err, attempt)
			if !ok {
				return res, err
			}
			if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= wait {
				return res, err
			}
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, interrupted(ctx, err, attempt)
			case <-timer.C:
			}
		}
	}
}

// wait returns how long to wait before retrying a call whose attempt
// number attempt failed with err, or false if it is not to be retried.
func (r retrier) wait(ctx context.Context, err error, attempt int) (time.Duration, bool) {
	if ctx.Err() != nil || !IsRetryable(err) {
		return 0, false
	}
	if hint, ok := retryHint(err); ok {
		return hint, hint <= r.policy.MaxBackoff
	}
	return r.policy.backoff(attempt), true
}

func (retrier) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (retrier) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// interrupted is the error of a call whose context was done while it
// waited to retry.
func interrupted(ctx context.Context, last error, attempts int) error {
	code := connect.CodeCanceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, fmt.Errorf("%w while waiting to retry; attempt %d failed with: %v", ctx.Err(), attempts, last))
}

// safeToRetry reports whether sending req again cannot apply it twice: it
// carries an idempotency key, or its contract says it only reads.
func safeToRetry(req connect.AnyRequest) bool {
	if req.Header().Get(IdempotencyKeyHeader) != "" {
		return true
	}
	spec := req.Spec()
	if spec.IdempotencyLevel == connect.IdempotencyNoSideEffects || spec.IdempotencyLevel == connect.IdempotencyIdempotent {
		return true
	}
	method, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok || !proto.HasExtension(method.Options(), optionsv1.E_Capability) {
		return false
	}
	return !mutates(spec)
}

// retryHint returns how long the server asked the caller to wait before
// retrying, from a google.rpc.RetryInfo detail or a Retry-After header.
func retryHint(err error) (time.Duration, bool) {
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return 0, false
	}
	for _, d := range ce.Details() {
		if d.Type() == retryInfoType {
			if delay, ok := decodeRetryInfo(d.Bytes()); ok {
				return delay, true
			}
		}
	}
	return parseRetryAfter(ce.Meta().Get("Retry-After"))
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date.
func parseRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 32); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
