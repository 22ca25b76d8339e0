package idempotency_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"plinth.dev/plinth/gateway/idempotency"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
)

// validKey is the rule of the README, written out independently of
// checkKey: 1 to 255 visible ASCII characters, no spaces.
func validKey(key string) bool {
	if key == "" || len(key) > idempotency.MaxKeyLength {
		return false
	}
	for i := range len(key) {
		if key[i] < '!' || key[i] > '~' {
			return false
		}
	}
	return true
}

// FuzzIdempotencyKey sends arbitrary Idempotency-Key headers to a mutating
// capability behind the interceptor (over the memory store, through a real
// Connect handler). A key is accepted exactly when it is 1 to 255 visible
// ASCII characters: an accepted key runs the capability once, replays the
// same answer to a retry without running it again, and refuses the key with
// another request; any other key is refused with InvalidArgument, claims
// nothing and never runs the capability. Nothing panics.
func FuzzIdempotencyKey(f *testing.F) {
	for _, k := range []string{
		"sign-up-ada-1", "550e8400-e29b-41d4-a716-446655440000", "", " ", "a b", "key\n", "\x00", "\x7f", "~!", "ключ",
		strings.Repeat("k", idempotency.MaxKeyLength), strings.Repeat("k", idempotency.MaxKeyLength+1),
		"\r\nX-Injected: 1", "%00", "\xff\xfe",
	} {
		f.Add(k)
	}
	method := customersv1.File_plinth_customers_v1_customers_proto.Services().ByName("CustomerService").Methods().ByName("SignUpCustomer")
	const procedure = "/plinth.customers.v1.CustomerService/SignUpCustomer"
	f.Fuzz(func(t *testing.T, key string) {
		runs := 0
		handle := func(_ context.Context, req *connect.Request[customersv1.SignUpCustomerRequest]) (*connect.Response[customersv1.SignUpCustomerResponse], error) {
			runs++
			return connect.NewResponse(&customersv1.SignUpCustomerResponse{Customer: &customersv1.Customer{
				Id: "cus_01ARZ3NDEKTSV4RRFFQ69G5FAV", Name: req.Msg.GetName(), Email: req.Msg.GetEmail()}}), nil
		}
		h := connect.NewUnaryHandler(procedure, handle, connect.WithSchema(method),
			connect.WithInterceptors(idempotency.NewInterceptor(idempotency.NewMemoryStore(), idempotency.Options{
				Mutating: func(string) bool { return true },
			})))
		call := func(body string) (int, http.Header, string) {
			req := httptest.NewRequest(http.MethodPost, procedure, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header[idempotency.Header] = []string{key} // byte for byte, as a client sent it
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code, rec.Header(), rec.Body.String()
		}
		codeOf := func(body string) string {
			var e struct {
				Code string `json:"code"`
			}
			json.Unmarshal([]byte(body), &e)
			return e.Code
		}
		const ada, grace = `{"name":"Ada","email":"ada@example.com"}`, `{"name":"Grace","email":"grace@example.com"}`

		status, header, body := call(ada)
		if !validKey(key) {
			if status != http.StatusBadRequest || codeOf(body) != "invalid_argument" || runs != 0 {
				t.Fatalf("key %q: HTTP %d %s, %d runs; want invalid_argument and no run", key, status, body, runs)
			}
			// Nothing was claimed: the same call is refused the same way.
			if status, _, body := call(ada); status != http.StatusBadRequest || codeOf(body) != "invalid_argument" || runs != 0 {
				t.Fatalf("key %q, again: HTTP %d %s, %d runs", key, status, body, runs)
			}
			return
		}
		if status != http.StatusOK || runs != 1 || header.Get(idempotency.ReplayedHeader) != "" {
			t.Fatalf("key %q: HTTP %d %s, %d runs; want one run", key, status, body, runs)
		}
		status, header, again := call(ada)
		if status != http.StatusOK || runs != 1 || header.Get(idempotency.ReplayedHeader) != "true" || again != body {
			t.Fatalf("key %q, retried: HTTP %d %s (replayed %q), %d runs; want the first answer replayed", key, status, again, header.Get(idempotency.ReplayedHeader), runs)
		}
		status, _, other := call(grace)
		if status != http.StatusBadRequest || codeOf(other) != "failed_precondition" || runs != 1 {
			t.Fatalf("key %q with another request: HTTP %d %s, %d runs; want failed_precondition", key, status, other, runs)
		}
	})
}
