// Package registry is where domains declare their capabilities and their
// backends, in the spirit of Caddy's modules and SpiceDB's datastore engines.
//
// A domain registers itself and each of its backends from init():
//
//	func init() {
//		registry.RegisterDomain(registry.Domain{Name: "customers", ...})
//	}
//
// and the binary links them in with blank imports (capabilities/all). At
// start-up the gateway reads the configuration, picks one backend per domain
// by name, opens it and mounts the domain's handler over it. A duplicate or
// empty name panics at start, never at the first request; an unknown backend
// name in the configuration stops start-up and lists the known ones.
package registry

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/reflect/protoreflect"

	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/seal"
)

// Domain is one domain of capabilities: a protobuf service, one rpc per
// capability, and how to serve it over a backend's store.
type Domain struct {
	// Name names the domain in configuration, e.g. "customers".
	Name string
	// Service is the domain's protobuf service; the gateway reads the
	// capability options of its methods.
	Service protoreflect.ServiceDescriptor
	// DefaultBackend is the backend used when configuration names none.
	DefaultBackend string
	// Mount returns the handler that serves the service over store, which is
	// what the chosen backend's Open returned, and the path to mount it on;
	// env is the gateway's (its PageTokens sign the domain's page tokens).
	// Build it with MountFunc.
	Mount func(store any, env Env, opts ...connect.HandlerOption) (string, http.Handler, error)
	// Resources, if not nil, makes the domain's ResourceSource over store
	// (what the chosen backend's Open returned, as for Mount): how the
	// resources domain reads what customers own in this domain. Build it
	// with ResourcesFunc, over the domain's own Store interface, so that
	// every backend of the domain serves it.
	Resources func(store any) (ResourceSource, error)
}

// MountFunc adapts a typed constructor of a domain's handler to
// Domain.Mount, checking that the store a backend opened is a S.
func MountFunc[S any](newHandler func(store S, env Env, opts ...connect.HandlerOption) (string, http.Handler)) func(any, Env, ...connect.HandlerOption) (string, http.Handler, error) {
	return func(store any, env Env, opts ...connect.HandlerOption) (string, http.Handler, error) {
		s, ok := store.(S)
		if !ok {
			var want S
			return "", nil, fmt.Errorf("registry: backend opened a %T, the domain needs a %T", store, &want)
		}
		path, h := newHandler(s, env, opts...)
		return path, h, nil
	}
}

// Backend is one implementation of a domain's store.
type Backend struct {
	// Domain is the name of the domain the backend serves.
	Domain string
	// Name names the backend in configuration, e.g. "memory" or "postgres".
	Name string
	// Open makes the store. It may use what env offers and nothing else.
	// A store that also implements Pinger is checked by /readyz; one that
	// implements io.Closer is closed at shutdown.
	Open func(ctx context.Context, env Env) (any, error)
	// Migrations, if not nil, are the versioned SQL migrations of the
	// backend's PostgreSQL schema (files named like 00001_create.sql, in
	// goose's format), applied by `plinth migrate` into the schema named
	// after the domain.
	Migrations fs.FS
}

// ID returns "<domain>.<name>", e.g. "customers.postgres".
func (b Backend) ID() string { return b.Domain + "." + b.Name }

// Env is what the gateway offers backends when it opens them.
type Env struct {
	Logger *slog.Logger
	// Postgres returns the gateway's shared PostgreSQL pool, or an error
	// that says how to configure one.
	Postgres func(ctx context.Context) (*pgxpool.Pool, error)
	// Sealer returns the gateway's sealer of sensitive data (keys from the
	// configured keyring), or an error that says how to configure one. A
	// backend that keeps data outside memory seals every sensitive field
	// with it before writing.
	Sealer func(ctx context.Context) (*seal.Sealer, error)
	// PageTokens signs and checks the page tokens of every listing. The
	// gateway derives its key from the deployment's keyring, so that every
	// gateway of the deployment accepts the others' tokens, after restarts
	// too. Nil leaves each domain's Service a key of its own (see
	// pagetoken.NewEphemeralCodec): good for one process and no longer.
	PageTokens *pagetoken.Codec
	// ResourceSources returns the ResourceSource of every domain the
	// gateway serves that declares one (Domain.Resources), over the store
	// of its chosen backend; the resources domain reads through them. It
	// is resolved when called, not when backends open (the other domains
	// may open after the one that asks): call it when serving a request,
	// never in Open. Nil when the gateway offers none.
	ResourceSources func() []ResourceSource
}

// Rewrapper is implemented by stores that keep sealed data: Rewrap
// rewraps every stored data key under the latest versions of the class
// keys (after a rotation) and returns how many records it rewrote.
type Rewrapper interface {
	Rewrap(ctx context.Context) (int, error)
}

// Pinger is implemented by stores that can tell whether what they store in
// is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

var (
	mu       sync.RWMutex
	domains  = map[string]Domain{}
	backends = map[string]Backend{} // by ID
)

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// RegisterDomain registers a domain. It panics if the name is empty or not
// lower-case letters, digits and underscores, if a domain of that name is
// registered already, or if the domain lacks a service or a mount.
func RegisterDomain(d Domain) {
	mu.Lock()
	defer mu.Unlock()
	switch {
	case !namePattern.MatchString(d.Name):
		panic(fmt.Sprintf("registry: domain name %q must match %s", d.Name, namePattern))
	case d.Service == nil || d.Mount == nil:
		panic(fmt.Sprintf("registry: domain %q needs a Service and a Mount", d.Name))
	case d.DefaultBackend == "":
		panic(fmt.Sprintf("registry: domain %q needs a DefaultBackend", d.Name))
	}
	if _, dup := domains[d.Name]; dup {
		panic(fmt.Sprintf("registry: domain %q registered twice", d.Name))
	}
	domains[d.Name] = d
}

// RegisterBackend registers a backend. It panics on an empty or malformed
// name, a missing Open, or a backend registered twice.
func RegisterBackend(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	switch {
	case !namePattern.MatchString(b.Domain) || !namePattern.MatchString(b.Name):
		panic(fmt.Sprintf("registry: backend %q: domain and name must match %s", b.ID(), namePattern))
	case b.Open == nil:
		panic(fmt.Sprintf("registry: backend %q needs an Open", b.ID()))
	}
	if _, dup := backends[b.ID()]; dup {
		panic(fmt.Sprintf("registry: backend %q registered twice", b.ID()))
	}
	backends[b.ID()] = b
}

// Domains returns every registered domain, by name.
func Domains() []Domain {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Domain, 0, len(domains))
	for _, d := range domains {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Domain) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Backends returns the backends registered for a domain, by name.
func Backends(domain string) []Backend {
	mu.RLock()
	defer mu.RUnlock()
	var out []Backend
	for _, b := range backends {
		if b.Domain == domain {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Backend) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// LookupBackend returns a domain's backend by name. For an unknown domain or
// backend the error lists the known ones.
func LookupBackend(domain, name string) (Backend, error) {
	mu.RLock()
	_, domainKnown := domains[domain]
	b, ok := backends[domain+"."+name]
	mu.RUnlock()
	if !domainKnown {
		var known []string
		for _, d := range Domains() {
			known = append(known, d.Name)
		}
		return Backend{}, fmt.Errorf("unknown domain %q (known domains: %s)", domain, strings.Join(known, ", "))
	}
	if !ok {
		var known []string
		for _, b := range Backends(domain) {
			known = append(known, b.Name)
		}
		return Backend{}, fmt.Errorf("unknown backend %q for domain %s (known backends: %s)", name, domain, strings.Join(known, ", "))
	}
	return b, nil
}

// RegisterPostgresBackend registers a domain's "postgres" backend: newStore
// makes the domain's store over the gateway's shared pool (with what else
// it needs from env), and migrations
// (goose's format, in the schema named after the domain) are applied by
// `plinth migrate` or by the gateway before it opens the backend, never by
// the backend itself.
func RegisterPostgresBackend(domain string, migrations fs.FS, newStore func(ctx context.Context, pool *pgxpool.Pool, env Env) (any, error)) {
	RegisterBackend(Backend{
		Domain: domain,
		Name:   "postgres",
		Open: func(ctx context.Context, env Env) (any, error) {
			if env.Postgres == nil {
				return nil, fmt.Errorf("%s/postgres: the gateway offers no PostgreSQL pool", domain)
			}
			pool, err := env.Postgres(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s/postgres: %w", domain, err)
			}
			return newStore(ctx, pool, env)
		},
		Migrations: migrations,
	})
}

// MigrationsIn returns the directory dir of an embedded file system, for
// the Migrations of a backend; it panics if dir is not a valid path, which
// only a typo in the embedding package can cause.
func MigrationsIn(files fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
