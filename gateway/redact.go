package gateway

import (
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"plinth.dev/plinth/internal/sensitive"
)

// maxLoggedMessageBytes bounds a message written to the debug log.
const maxLoggedMessageBytes = 4096

// redactedJSON renders a message for the debug log with every field the
// contract classifies as sensitive replaced (see sensitive.Redact).
func redactedJSON(msg proto.Message) string {
	b, err := protojson.Marshal(sensitive.Redact(msg))
	if err != nil {
		return "(unprintable message)"
	}
	if len(b) > maxLoggedMessageBytes {
		return string(b[:maxLoggedMessageBytes]) + "...(truncated)"
	}
	return string(b)
}
