package gateway

import (
	"net/http"
	"regexp"

	"plinth.dev/plinth/internal/ids"
)

// RequestIDHeader carries the request id on every response. A caller may
// send its own (up to 64 letters, digits, '.', '_' or '-') to correlate its
// logs with ours; otherwise the gateway makes one.
const RequestIDHeader = "X-Request-Id"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestIDOf returns the id the caller sent, if it is one, or a new one.
func requestIDOf(r *http.Request) string {
	id := r.Header.Get(RequestIDHeader)
	if !requestIDPattern.MatchString(id) {
		id = ids.New("req")
	}
	return id
}
