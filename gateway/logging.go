package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
)

// withRequestIDs returns a logger whose records carry the request id of the
// context they are logged with, so that no call site can forget it and every
// line about a request can be found by the id its caller was given.
func withRequestIDs(log *slog.Logger) *slog.Logger {
	return slog.New(requestIDHandler{log.Handler()})
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// serveLoggingRefusals serves a capability's path, and logs and counts the
// call if connect-go refuses it before any interceptor runs (a body that
// does not decode, one over the size limit, an unsupported codec), so that
// every call has an access log line and a metric, as the observer gives
// every call that gets further.
// Connect's message for such a refusal is not logged: a decoding error can
// repeat the offending value.
func serveLoggingRefusals(log *slog.Logger, m *metrics, c *call, next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c.status = statusRecorder{ResponseWriter: w, status: http.StatusOK}
	rec := &c.status
	next.ServeHTTP(rec, r)
	if c.observed.Load() {
		return
	}
	elapsed := time.Since(start)
	code := refusalCode(w.Header(), rec.status)
	m.observe(r.URL.Path, code, elapsed)
	log.LogAttrs(r.Context(), slog.LevelInfo, "call",
		slog.String("capability", r.URL.Path),
		slog.String("code", code),
		slog.Int("http_status", rec.status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("error", "refused before reaching the capability"))
}

// refusalCode reads the code of a refused call: gRPC and gRPC-Web put it in
// grpc-status (a header or a trailer), the Connect protocol in the HTTP
// status.
func refusalCode(h http.Header, status int) string {
	for _, key := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if v := h.Get(key); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				if n == 0 {
					return "ok"
				}
				return connect.Code(n).String()
			}
		}
	}
	switch status {
	case http.StatusOK:
		return "ok"
	case http.StatusBadRequest:
		return connect.CodeInvalidArgument.String()
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return connect.CodeResourceExhausted.String()
	case http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed, http.StatusNotFound, http.StatusNotImplemented:
		return connect.CodeUnimplemented.String()
	default:
		return "http_" + strings.ToLower(http.StatusText(status))
	}
}

// statusRecorder remembers the status a handler wrote. It keeps the
// writer's optional abilities (flushing, trailers, deadlines) reachable
// through Unwrap and Flush, which connect-go's streaming needs.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
