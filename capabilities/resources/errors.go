package resources

import (
	"fmt"
	"strings"

	"plinth.dev/plinth/capabilities/domainerr"
)

// UnknownPrefixError refuses an id whose prefix names no kind of resource
// that a source serves: a transfer's "trf_...", say, which is an id but
// not of something a customer owns.
type UnknownPrefixError struct {
	Field  string   // the request field, e.g. "resource_id"
	Prefix string   // e.g. "trf"
	Known  []string // the prefixes the sources serve, sorted
}

func (e *UnknownPrefixError) Error() string {
	known := make([]string, len(e.Known))
	for i, p := range e.Known {
		known[i] = p + "_"
	}
	if len(known) == 0 {
		return fmt.Sprintf("%s: ids that start with %s_ are not ids of resources; this gateway serves no kind of resource", e.Field, e.Prefix)
	}
	return fmt.Sprintf("%s: ids that start with %s_ are not ids of resources; resource ids start with %s",
		e.Field, e.Prefix, strings.Join(known, " or "))
}

// Kind returns domainerr.KindInvalidArgument.
func (e *UnknownPrefixError) Kind() domainerr.Kind { return domainerr.KindInvalidArgument }

// Reason returns "UNKNOWN_RESOURCE_PREFIX".
func (e *UnknownPrefixError) Reason() string { return "UNKNOWN_RESOURCE_PREFIX" }

// Metadata names the prefix and the known ones, comma-separated.
func (e *UnknownPrefixError) Metadata() map[string]string {
	return map[string]string{"prefix": e.Prefix, "known_prefixes": strings.Join(e.Known, ",")}
}

var (
	_ domainerr.Error    = (*UnknownPrefixError)(nil)
	_ domainerr.Detailed = (*UnknownPrefixError)(nil)
)
