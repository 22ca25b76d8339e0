package ids

import (
	"regexp"
	"strings"
	"sync"
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

// Ids made one after the other sort in that order while other goroutines
// make ids too, within the same milliseconds: the flake that a listing test
// once hit with ulid.Make.
func TestNewSortsInCreationOrderUnderConcurrency(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					New("ent")
				}
			}
		}()
	}
	prev := New("lac")
	for range 20000 {
		id := New("lac")
		if id <= prev {
			close(stop)
			wg.Wait()
			t.Fatalf("New gave %q after %q", id, prev)
		}
		prev = id
	}
	close(stop)
	wg.Wait()
}
