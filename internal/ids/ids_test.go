package ids

import (
	"regexp"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	shape := regexp.MustCompile(`^cus_[0-9A-HJKMNP-TV-Z]{26}$`)
	a, b := New("cus"), New("cus")
	if !shape.MatchString(a) || !shape.MatchString(b) {
		t.Fatalf("New(cus) = %q, %q; want cus_ and a ULID", a, b)
	}
	if a >= b {
		t.Fatalf("New(cus) gave %q then %q: ids must sort in creation order", a, b)
	}
	long := strings.Repeat("p", 40)
	if id := New(long); !strings.HasPrefix(id, long+"_") || len(id) != 41+26 {
		t.Fatalf("New of a 40-letter prefix = %q", id)
	}
}
