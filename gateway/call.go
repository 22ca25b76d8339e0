package gateway

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"plinth.dev/plinth/capabilities/access"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

// call is what the gateway keeps about one request while it serves it: the
// request's id, and what the layers of the onion (interceptor.go) note for
// the layers outside them. withCall makes it first thing and puts it in the
// request's context, once; every layer reads and notes through it. (Each
// layer adding a context value of its own, and each HTTP middleware a copy
// of the request to carry it, cost a dozen allocations a call: a tenth of
// the gateway's overhead over a bare handler.)
type call struct {
	requestID string
	// observed: the observer logged and counted the call, so the HTTP
	// layer (serveLoggingRefusals, restHandler) does not.
	observed atomic.Bool
	// recorded: the call's audit record committed with its effect
	// (auditor.enlist), so the auditor does not append another.
	recorded atomic.Bool

	mu sync.Mutex
	// principalID is the authenticated caller, authorized or not: the
	// audit names who tried.
	principalID string
	// principal is the caller once authorized for the capability.
	principal  access.Principal
	authorized bool
	// revealed are the classes of sensitive data the answer shows in full.
	revealed []string

	// status is what serveLoggingRefusals records the response with: part
	// of the call so that it costs no allocation of its own.
	status statusRecorder
}

type callKey struct{}

// withCall returns ctx carrying c.
func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// callFrom returns the call ctx belongs to, or nil outside one.
func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// ensureCall returns ctx and its call, making one if ctx has none: the
// interceptors also serve handlers mounted without withCall.
func ensureCall(ctx context.Context) (context.Context, *call) {
	if c := callFrom(ctx); c != nil {
		return ctx, c
	}
	c := &call{}
	return withCall(ctx, c), c
}

// RequestID returns the id of the request ctx belongs to, or "" outside one.
func RequestID(ctx context.Context) string {
	if c := callFrom(ctx); c != nil {
		return c.requestID
	}
	return ""
}

// PrincipalFrom returns the authenticated and authorized caller of a
// capability call.
func PrincipalFrom(ctx context.Context) (access.Principal, bool) {
	c := callFrom(ctx)
	if c == nil {
		return access.Principal{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.principal, c.authorized
}

func markObserved(ctx context.Context) {
	if c := callFrom(ctx); c != nil {
		c.observed.Store(true)
	}
}

// noteAuthenticated notes who is calling, before authorization decides.
func (c *call) noteAuthenticated(id string) {
	c.mu.Lock()
	c.principalID = id
	c.mu.Unlock()
}

// noteAuthorized notes the caller the inner layers act for.
func (c *call) noteAuthorized(p access.Principal) {
	c.mu.Lock()
	c.principal, c.authorized = p, true
	c.mu.Unlock()
}

func noteRevealed(ctx context.Context, classes []optionsv1.Sensitivity) {
	c := callFrom(ctx)
	if c == nil || len(classes) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, class := range classes {
		c.revealed = append(c.revealed, classNames[class])
	}
}

// notes returns who called and what the answer revealed, as the inner
// layers noted them. The outer layers read them once the inner ones have
// returned, so revealed is no longer appended to and is not copied.
func (c *call) notes() (principal string, revealed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.principalID, c.revealed
}

func (c *call) revealedList() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.revealed, ",")
}

// withCall is the gateway's HTTP middleware, around every path: it gives
// the request its id (in the response header before anything can fail) and
// its call, bounds the request's body, and its time but on the long-lived
// streams of server reflection and health watching (which a client such as
// grpcurl holds open for as long as it wants), and logs the capability
// calls refused before any interceptor runs. It is one middleware so that
// the request is copied once for its new context.
func (s *Server) withCall(m *metrics, procedures map[string]bool, next http.Handler) http.Handler {
	timeout := s.cfg.Limits.RequestTimeout.Std()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{requestID: requestIDOf(r)}
		w.Header().Set(RequestIDHeader, c.requestID)
		ctx := withCall(r.Context(), c)
		if !strings.HasPrefix(r.URL.Path, "/grpc.reflection.") && r.URL.Path != "/grpc.health.v1.Health/Watch" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
			// The context does not interrupt a read of the body: without a
			// read deadline, a client that trickles its body holds the call
			// and its connection for as long as it likes (e2e
			// TestFaultClients/trickled-body). A moment after the timeout,
			// so that a call that ran out of time says so.
			_ = setReadDeadline(w, time.Now().Add(timeout+time.Second))
		}
		r = r.WithContext(ctx)
		// Connect refuses an oversized message with ResourceExhausted before
		// this trips; the reader guards every other path, and compressed
		// bodies, too.
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.Limits.MaxRequestBytes+1024)
		if procedures[r.URL.Path] {
			serveLoggingRefusals(s.log, m, c, next, w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// setReadDeadline is http.NewResponseController(w).SetReadDeadline without
// the controller's allocation when w can set it itself, as net/http's own
// writer can.
func setReadDeadline(w http.ResponseWriter, t time.Time) error {
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return http.NewResponseController(w).SetReadDeadline(t)
}
