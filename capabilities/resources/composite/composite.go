// Package composite is the resources domain's backend: a Store that holds
// nothing and reads the other domains through the resource sources the
// gateway offers (registry.Env.ResourceSources), resolved at every call.
// Whatever backends the customers and ledger domains run on (memory,
// PostgreSQL), the resources domain reads them through their sources, so
// it has no backend of its own to choose, no schema and no migrations.
package composite

import (
	"context"
	"errors"

	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/capabilities/resources"
)

// Store reads the sources that a function returns when asked.
type Store struct {
	sources func() []registry.ResourceSource
}

// New returns a Store over the sources that sources returns at each call.
func New(sources func() []registry.ResourceSource) *Store {
	return &Store{sources: sources}
}

// Sources returns the sources as they are now.
func (s *Store) Sources() []registry.ResourceSource { return s.sources() }

var _ resources.Store = (*Store)(nil)

func init() {
	registry.RegisterBackend(registry.Backend{
		Domain: "resources",
		Name:   "composite",
		Open: func(_ context.Context, env registry.Env) (any, error) {
			if env.ResourceSources == nil {
				return nil, errors.New("resources/composite: the gateway offers no resource sources (registry.Env.ResourceSources)")
			}
			return resources.Store(New(env.ResourceSources)), nil
		},
	})
}
