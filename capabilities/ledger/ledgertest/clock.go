package ledgertest

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// epoch is where every subtest's clock starts: a fixed instant with
// nanoseconds, finer than the microseconds PostgreSQL keeps, so that a
// service that forgets to truncate shows up as a difference between what it
// answered and what it stored.
var epoch = time.Date(2025, time.March, 14, 15, 9, 26, 535897932, time.UTC)

// sameInstant reports whether a timestamp the service answered is the
// instant t, to the microsecond: the precision every store keeps.
func sameInstant(got *timestamppb.Timestamp, t time.Time) bool {
	return got != nil && got.AsTime().Truncate(time.Microsecond).Equal(t.Truncate(time.Microsecond))
}
