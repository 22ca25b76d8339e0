package gateway

// REST paths. Every capability whose contract gives it a google.api.http
// rule (GET /v1/customers/{customer_id}, POST /v1/transfers, ...) is also
// served as resource-style HTTP/JSON. A REST call is transcoded by
// connectrpc.com/vanguard into a Connect call of the very handler that
// serves the capability's procedure, so it goes through the same
// interceptors (interceptor.go): authentication and scopes, masking,
// validation, idempotency (the Idempotency-Key header passes through, and
// a key is the caller's whatever the protocol: a REST retry of a Connect
// call is a replay), audit, the access log and metrics. Errors come back
// as a google.rpc.Status in JSON ({"code": 3, "message": "...",
// "details": [...]}) with the HTTP status of vanguard's mapping of the code
// (invalid_argument and failed_precondition 400, unauthenticated 401,
// permission_denied 403, not_found 404, already_exists and aborted 409,
// ...).
//
// The procedures' own paths do not go through the transcoder: Connect,
// gRPC and gRPC-Web reach their handlers as before.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"plinth.dev/plinth/gateway/catalog"
)

// restRoutes gathers the domains' handlers, then serves their REST paths.
type restRoutes struct {
	services []*vanguard.Service
	// byProcedure are the REST routes of each capability, for the
	// catalog; set by mount.
	byProcedure map[string][]catalog.Route
}

// add is given each domain's service path and handler, as mounted for
// its procedures.
func (r *restRoutes) add(path string, h http.Handler) {
	r.services = append(r.services, vanguard.NewService(path, wholeBodyFirst(h)))
}

// mount serves on mux the REST paths of the capabilities, under the first
// segment of each path ("/v1/").
func (r *restRoutes) mount(mux *http.ServeMux, caps []Capability, log *slog.Logger, m *metrics) error {
	transcoder, err := vanguard.NewTranscoder(r.services,
		vanguard.WithCodec(func(res vanguard.TypeResolver) vanguard.Codec {
			return restJSONCodec{vanguard.NewJSONCodec(res)}
		}),
		vanguard.WithDefaultServiceOptions(
			// The handlers are the gateway's own Connect handlers, in the
			// same process: binary protobuf, and no compression to undo.
			vanguard.WithTargetProtocols(vanguard.ProtocolConnect),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
			vanguard.WithNoTargetCompression(),
		))
	if err != nil {
		return fmt.Errorf("REST paths: %w", err)
	}
	h := &restHandler{log: log, metrics: m, transcoder: transcoder}
	var prefixes []string
	r.byProcedure = map[string][]catalog.Route{}
	for _, c := range caps {
		for _, rt := range catalog.HTTPRoutes(c.Method) {
			re, prefix, err := compileTemplate(rt.Path)
			if err != nil {
				return fmt.Errorf("REST paths: %s: %w", c.Procedure, err)
			}
			h.routes = append(h.routes, restRoute{method: rt.Method, path: re, body: rt.Body, procedure: c.Procedure, input: c.Method.Input()})
			if !slices.Contains(prefixes, prefix) {
				prefixes = append(prefixes, prefix)
			}
			r.byProcedure[c.Procedure] = append(r.byProcedure[c.Procedure], rt)
		}
	}
	for _, p := range prefixes {
		mux.Handle(p, h)
	}
	return nil
}

// catalogRoutes returns the REST routes a capability is served on.
func (r *restRoutes) catalogRoutes(procedure string) []catalog.Route {
	return r.byProcedure[procedure]
}

// restRoute is one REST route of a capability.
type restRoute struct {
	method    string
	path      *regexp.Regexp
	body      string // the rule's body: "*", "" or a field
	procedure string
	input     protoreflect.MessageDescriptor
}

// restHandler serves the REST paths: it refuses what the transcoder would
// take for a fault of its own (an unknown query parameter, a body where
// the route takes none), hands the rest to the transcoder, and logs and
// counts, under the capability's procedure, the calls refused before any
// interceptor runs, as serveLoggingRefusals does for the procedures' paths. A
// path that names no capability is not a call: it gets its 404 or 405
// unlogged, like any other unknown path.
type restHandler struct {
	log        *slog.Logger
	metrics    *metrics
	routes     []restRoute
	transcoder http.Handler
}

// restAnswerKey holds, in a REST call's context, the writer that says
// whether the call was answered.
type restAnswerKey struct{}

func (h *restHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The transcoder rewrites the request's URL to the procedure's.
	method, path := r.Method, r.URL.Path
	start := time.Now()
	var route *restRoute
	if i := slices.IndexFunc(h.routes, func(rt restRoute) bool { return rt.method == method && rt.path.MatchString(path) }); i >= 0 {
		route = &h.routes[i]
	}
	rec := &answerRecorder{ResponseWriter: w}
	ctx, c := ensureCall(r.Context())
	ctx = context.WithValue(ctx, restAnswerKey{}, rec)
	switch {
	case route == nil:
		h.transcoder.ServeHTTP(rec, r.WithContext(ctx))
		return
	case route.body == "" && r.ContentLength > 0:
		writeRESTError(rec, fmt.Sprintf("%s %s takes no body: its fields go in the path and the query string", method, path))
	default:
		if err := checkQuery(route.input, r.URL.RawQuery); err != "" {
			writeRESTError(rec, err)
		} else {
			h.transcoder.ServeHTTP(rec, r.WithContext(ctx))
		}
	}
	if c.observed.Load() {
		return
	}
	elapsed := time.Since(start)
	code := refusalCode(w.Header(), rec.status)
	h.metrics.observe(route.procedure, code, elapsed)
	h.log.LogAttrs(ctx, slog.LevelInfo, "call",
		slog.String("capability", route.procedure),
		slog.String("protocol", "rest"),
		slog.String("code", code),
		slog.Int("http_status", rec.status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("error", "refused before reaching the capability"))
}

// checkQuery returns why a query string does not fit a request message
// (a parameter that names no field), or "". Values are the transcoder's
// to check.
func checkQuery(md protoreflect.MessageDescriptor, rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "the query string does not parse"
	}
	for key := range q {
		m := md
		for part := range strings.SplitSeq(key, ".") {
			if m == nil {
				return fmt.Sprintf("query parameter %q names no field of %s", key, md.FullName())
			}
			f := m.Fields().ByJSONName(part)
			if f == nil {
				f = m.Fields().ByName(protoreflect.Name(part))
			}
			if f == nil || f.IsMap() {
				return fmt.Sprintf("query parameter %q names no field of %s", key, md.FullName())
			}
			m = nil
			if f.Message() != nil && !f.IsList() {
				m = f.Message()
			}
		}
	}
	return ""
}

// writeRESTError answers an invalid REST call as the transcoder answers
// one: a google.rpc.Status in JSON, with HTTP status 400.
func writeRESTError(w http.ResponseWriter, msg string) {
	body, err := protojson.Marshal(&status.Status{Code: int32(connect.CodeInvalidArgument), Message: msg})
	if err != nil {
		body = []byte(`{"code":3}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	w.Write(body)
}

// answerRecorder remembers whether, and with what status, a REST call was
// answered. It keeps the writer's flushing reachable, which the
// transcoder needs.
type answerRecorder struct {
	http.ResponseWriter
	status   int
	answered bool
}

func (r *answerRecorder) WriteHeader(status int) {
	if !r.answered {
		r.status, r.answered = status, true
	}
	// The transcoder names no codec in an error it answers before it has
	// chosen one ("application/"); every REST answer here is JSON.
	if h := r.Header(); h.Get("Content-Type") == "application/" {
		h.Set("Content-Type", "application/json")
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *answerRecorder) Write(p []byte) (int, error) {
	if !r.answered {
		r.status, r.answered = http.StatusOK, true
	}
	return r.ResponseWriter.Write(p)
}

func (r *answerRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *answerRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// wholeBodyFirst reads a transcoded call's body to its end before its
// handler runs. The transcoder decodes a REST request as the handler reads
// it; when it cannot (a body that is not the request's JSON, a path or
// query value of the wrong type), it answers the error itself and ends the
// body there, which the handler would take for an empty request, and run.
// Read first, the handler runs only on what the transcoder could decode.
func wholeBodyFirst(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := r.Context().Value(restAnswerKey{}).(*answerRecorder)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if rec.answered {
			return // refused by the transcoder
		}
		var rest io.Reader = bytes.NewReader(body)
		if err != nil {
			// Connect refuses a body it cannot read, as it would have.
			rest = io.MultiReader(rest, errReader{err})
		}
		r.Body = io.NopCloser(rest)
		next.ServeHTTP(w, r)
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// restJSONCodec is vanguard's JSON codec, but a request that does not
// decode is the caller's fault: InvalidArgument, where vanguard would
// answer Unknown, with HTTP status 500.
type restJSONCodec struct{ *vanguard.JSONCodec }

func (c restJSONCodec) Unmarshal(data []byte, msg proto.Message) error {
	if err := c.JSONCodec.Unmarshal(data, msg); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the body is not a %s in JSON: %w", msg.ProtoReflect().Descriptor().FullName(), err))
	}
	return nil
}

func (c restJSONCodec) UnmarshalField(data []byte, msg proto.Message, field protoreflect.FieldDescriptor) error {
	if err := c.JSONCodec.UnmarshalField(data, msg, field); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the body is not a %s in JSON: %w", field.FullName(), err))
	}
	return nil
}

// templateVariable is a variable, or a wildcard, of a google.api.http
// path template.
var templateVariable = regexp.MustCompile(`\{[^}=]+\}|\{[^}=]+=[^}]*\}|\*\*|\*`)

// compileTemplate returns a path template as a regular expression that
// matches the paths it names, and the prefix of the paths that the mux
// hands the REST handler: the template's first segment, which must be a
// literal ("/v1/").
func compileTemplate(tmpl string) (*regexp.Regexp, string, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return nil, "", fmt.Errorf("path %q does not start with /", tmpl)
	}
	first, rest, more := strings.Cut(tmpl[1:], "/")
	if first == "" || strings.ContainsAny(first, "{}*:") {
		return nil, "", fmt.Errorf("path %q: its first segment must be a literal such as v1", tmpl)
	}
	if !more || rest == "" {
		return nil, "", fmt.Errorf("path %q: a REST path needs more than its first segment", tmpl)
	}
	var b strings.Builder
	b.WriteByte('^')
	last := 0
	for _, loc := range templateVariable.FindAllStringIndex(tmpl, -1) {
		b.WriteString(regexp.QuoteMeta(tmpl[last:loc[0]]))
		if v := tmpl[loc[0]:loc[1]]; v == "**" || strings.Contains(v, "=") {
			b.WriteString(`.+`)
		} else {
			b.WriteString(`[^/]+`)
		}
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(tmpl[last:]))
	b.WriteByte('$')
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, "", fmt.Errorf("path %q: %w", tmpl, err)
	}
	return re, "/" + first + "/", nil
}
