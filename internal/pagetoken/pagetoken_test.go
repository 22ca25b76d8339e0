package pagetoken_test

import (
	"errors"
	"strings"
	"testing"

	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/internal/pagetoken"
)

func TestRoundTrip(t *testing.T) {
	tok := pagetoken.Encode("state=pending", "cus_01JD5Q0000000000000000000")
	key, err := pagetoken.Decode("page_token", "state=pending", tok)
	if err != nil || key != "cus_01JD5Q0000000000000000000" {
		t.Fatalf("Decode(Encode(k)) = %q, %v", key, err)
	}
	if key, err := pagetoken.Decode("page_token", "state=pending", ""); err != nil || key != "" {
		t.Fatalf("the empty token is the first page: %q, %v", key, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	valid := pagetoken.Encode("state=pending", "cus_1")
	for name, tc := range map[string]struct{ filter, token, want string }{
		"another filter": {"state=closed", valid, "different filter"},
		"not base64":     {"state=pending", "%%%", "not a page token"},
		"too short":      {"state=pending", "AQ", "not a page token"},
		"wrong version":  {"state=pending", "Ag" + valid[2:], "not a page token"},
		"too long":       {"state=pending", pagetoken.Encode("state=pending", strings.Repeat("x", pagetoken.MaxKeyLen+1)), "not a page token"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pagetoken.Decode("page_token", tc.filter, tc.token)
			var ia *domainerr.InvalidArgumentError
			if !errors.As(err, &ia) || ia.Field != "page_token" || !strings.Contains(ia.Description, tc.want) {
				t.Fatalf("Decode(%q) = %v, want an InvalidArgumentError on page_token saying %q", tc.token, err, tc.want)
			}
		})
	}
}
