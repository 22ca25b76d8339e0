package resources

import "plinth.dev/plinth/capabilities/registry"

// Store is where the resources domain reads: the resource sources of the
// domains the gateway serves. Backends implement it (today only
// resources/composite); every implementation must pass resourcestest.Run.
//
// The domain stores nothing, so a Store holds no data of its own: each
// source reads its domain's Store when asked, and the Service merges what
// they answer. The rules of the domain (which source an id belongs to, the
// order of a listing, its pages) are the Service's, so no backend can
// disagree on them.
type Store interface {
	// Sources returns the sources to read, as they are when called (the
	// gateway resolves them after every domain has opened its backend).
	// No two sources share an id prefix.
	Sources() []registry.ResourceSource
}
