package gateway

import (
	"fmt"
	"slices"

	"plinth.dev/plinth/capabilities/registry"
)

// openResourceSources makes the resource source of every mounted domain
// that declares one (registry.Domain.Resources), over the store of the
// domain's chosen backend: what the resources domain reads, in process,
// through registry.Env.ResourceSources. New calls it once every backend is
// open, before anything is served.
func (s *Server) openResourceSources() error {
	for _, d := range s.domains {
		if d.domain.Resources == nil {
			continue
		}
		src, err := d.domain.Resources(d.store)
		if err != nil {
			return fmt.Errorf("backend %s: resources: %w", d.backend.ID(), err)
		}
		s.sources = append(s.sources, src)
	}
	return nil
}

// resourceSources is registry.Env.ResourceSources: the sources
// openResourceSources made. Backends get it when they open, before the
// sources exist, and call it when serving, after.
func (s *Server) resourceSources() []registry.ResourceSource { return slices.Clone(s.sources) }
