// Package resources is the resources domain: one view of everything a
// customer owns, whichever domain keeps it.
//
// The domain keeps nothing of its own. It reads the other domains in
// process, each through the small typed interface registry.ResourceSource
// that the domain builds over its own Store (customers.Resources,
// ledger.Resources) and declares with registry.Domain.Resources; the
// gateway hands the sources of the domains it mounted to this one through
// registry.Env.ResourceSources. So the resources domain never sees another
// domain's backend, and every backend of a source domain serves it alike.
//
// The package holds the capabilities (Service, one method per rpc of
// plinth.resources.v1), the Store interface (where the sources come from),
// and the domain's typed errors. Its one backend, resources/composite,
// reads the sources the gateway offers; it passes the conformance suite in
// resources/resourcestest over the memory and the PostgreSQL backends of
// the customers and ledger domains.
package resources

import "strings"

// prefixOf returns the prefix of an id ("lac" of "lac_01JQ..."), and false
// if it has none.
func prefixOf(id string) (string, bool) {
	prefix, _, ok := strings.Cut(id, "_")
	return prefix, ok && prefix != ""
}
