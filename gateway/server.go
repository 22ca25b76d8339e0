// Package gateway serves Plinth's capabilities: one port, the Connect
// protocol (JSON and binary), gRPC and gRPC-Web, over HTTP/1.1 and h2c.
//
// New reads the capability options of every registered domain, opens the
// backend the configuration picks for each, and mounts the domains' handlers
// behind the interceptors drawn in interceptor.go. Around them sit the
// operator's endpoints: /healthz (alive), /readyz (backends reachable),
// /metrics (Prometheus), grpc.health.v1 and server reflection.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"plinth.dev/plinth/capabilities/access"
	"plinth.dev/plinth/capabilities/audit"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/gateway/catalog"
	"plinth.dev/plinth/gateway/idempotency"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/migrate"
	"plinth.dev/plinth/internal/pagetoken"
	"plinth.dev/plinth/internal/seal"
	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
)

// Server is a configured gateway, ready to serve.
type Server struct {
	cfg          Config
	log          *slog.Logger
	handler      http.Handler
	capabilities []Capability
	domains      []*mountedDomain
	pool         *pgxpool.Pool
	closePool    func() // closes pool, and ends its credentials from Vault
	sealer       *seal.Sealer
	env          registry.Env
	// sources are what the resources domain reads (resources.go).
	sources      []registry.ResourceSource
	stopVault    func() // ends the keyring's Vault login renewal
	idempotency  idempotency.Store
	roles        *roles
	access       *access.Service // the access domain's capabilities: who is calling
	audit        *audit.Service  // the audit domain's: every call is recorded
	stopTracing  func(context.Context) error
	shuttingDown atomic.Bool
	// idempotencyKind is where idempotency keys are recorded.
	idempotencyKind string
	// auditWithEffects says that the records of calls that change state
	// are written in the transactions of their effects (see auditor).
	auditWithEffects bool
}

// mountedDomain is a domain with the store of its chosen backend.
type mountedDomain struct {
	domain  registry.Domain
	backend registry.Backend
	store   any
}

// New configures a gateway: it checks every capability's contract options,
// opens the chosen backends (connecting to PostgreSQL if one needs it, and
// applying migrations if configured to), and builds the handler. Any problem
// stops it with an error that names what to fix. Close releases what New
// opened.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	log = withRequestIDs(log)
	s := &Server{cfg: cfg, log: log, stopTracing: func(context.Context) error { return nil }}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	domains := registry.Domains()
	known := map[string]bool{}
	for _, d := range domains {
		known[d.Name] = true
	}
	var unknownDomains []string
	for name := range cfg.Backends {
		if !known[name] {
			unknownDomains = append(unknownDomains, name)
		}
	}
	if len(unknownDomains) > 0 {
		slices.Sort(unknownDomains)
		var names []string
		for _, d := range domains {
			names = append(names, d.Name)
		}
		return nil, fmt.Errorf("config: backends: unknown domain %v (known domains: %v)", unknownDomains, names)
	}

	var capErrs []error
	for _, d := range domains {
		caps, err := capabilitiesOf(d.Name, d.Service)
		capErrs = append(capErrs, err)
		s.capabilities = append(s.capabilities, caps...)
	}
	if err := errors.Join(capErrs...); err != nil {
		return nil, fmt.Errorf("contracts: %w", err)
	}

	// Page tokens are signed with a key that every gateway of the
	// deployment shares and that survives restarts: derived from the
	// keyring, on first use (a gateway starts while Vault is down). Without
	// a keyring (plinth dev: every backend in memory) the key is random per
	// process, which loses nothing: memory data does not survive a restart
	// either.
	pageTokens := pagetoken.NewEphemeralCodec()
	if cfg.Keyring.Backend != "" {
		sealer, err := s.openSealer(ctx)
		if err != nil {
			return nil, fmt.Errorf("page tokens: %w", err)
		}
		pageTokens = pagetoken.DeriveCodec(sealer)
	} else {
		for domain, backend := range cfg.Backends {
			if backend != "" && backend != "memory" {
				log.Warn("no keyring: page tokens are good on this gateway until it stops, not on others (set keyring.backend)", "domain", domain, "backend", backend)
			}
		}
	}
	s.env = registry.Env{Logger: log, Postgres: s.postgresPool, Sealer: s.openSealer, PageTokens: pageTokens,
		ResourceSources: s.resourceSources}
	env := s.env
	for _, d := range domains {
		name := cfg.Backends[d.Name]
		if name == "" {
			name = d.DefaultBackend
		}
		b, err := registry.LookupBackend(d.Name, name)
		if err != nil {
			return nil, fmt.Errorf("config: backends.%s: %w", d.Name, err)
		}
		if b.Migrations != nil {
			if err := s.prepareSchema(ctx, d.Name, b.Migrations, "backend "+b.ID()); err != nil {
				return nil, err
			}
		}
		store, err := b.Open(ctx, env)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", b.ID(), err)
		}
		s.domains = append(s.domains, &mountedDomain{domain: d, backend: b, store: store})
		log.Info("domain ready", "domain", d.Name, "backend", b.Name)
	}
	if err := s.openResourceSources(); err != nil {
		return nil, err
	}

	if err := s.openIdempotency(ctx); err != nil {
		return nil, err
	}
	if s.roles, err = newRoles(cfg.Auth.Roles, s.capabilities); err != nil {
		return nil, err
	}
	for _, d := range s.domains {
		if d.domain.Name == accessDomain {
			// The gateway keeps the access domain's Service: it
			// authenticates every call, and its roles are the gateway's.
			store, ok := d.store.(access.Store)
			if !ok {
				return nil, fmt.Errorf("backend %s: opened a %T, not an access.Store", d.backend.ID(), d.store)
			}
			s.access = access.NewService(store, access.WithRoleCheck(s.roles.exists), access.WithPageTokens(env.PageTokens))
		}
	}
	if s.access == nil {
		return nil, errors.New("the access domain is not linked into this binary: without it no call can be authenticated")
	}
	for _, d := range s.domains {
		if d.domain.Name == auditDomain {
			store, ok := d.store.(audit.Store)
			if !ok {
				return nil, fmt.Errorf("backend %s: opened a %T, not an audit.Store", d.backend.ID(), d.store)
			}
			s.audit = audit.NewService(store, audit.WithPageTokens(env.PageTokens))
			// A record can commit with its call's effect only if the
			// audit lives in the database of the effect's transaction.
			s.auditWithEffects = d.backend.Migrations != nil && s.pool != nil && s.idempotencyKind == "postgres"
		}
	}
	if s.audit == nil {
		return nil, errors.New("the audit domain is not linked into this binary: without it calls cannot be recorded")
	}

	tracing, stopTracing, err := newTracing(ctx, cfg.Tracing)
	if err != nil {
		return nil, err
	}
	s.stopTracing = stopTracing
	s.handler, err = s.buildHandler(tracing)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// IdempotencyStoreKind returns where cfg records idempotency keys:
// "postgres" or "memory".
func IdempotencyStoreKind(cfg Config, backends []registry.Backend) string {
	if cfg.Idempotency.Store != "" {
		return cfg.Idempotency.Store
	}
	for _, b := range backends {
		if b.Migrations != nil {
			return "postgres"
		}
	}
	return "memory"
}

func (s *Server) openIdempotency(ctx context.Context) error {
	var backends []registry.Backend
	for _, d := range s.domains {
		backends = append(backends, d.backend)
	}
	s.idempotencyKind = IdempotencyStoreKind(s.cfg, backends)
	switch s.idempotencyKind {
	case "postgres":
		if err := s.prepareSchema(ctx, idempotency.Schema, idempotency.Migrations, "idempotency records"); err != nil {
			return err
		}
		// Recorded answers hold what callers were answered, sensitive
		// data included: they are sealed like every value at rest.
		sealer, err := s.openSealer(ctx)
		if err != nil {
			return fmt.Errorf("idempotency records in PostgreSQL: %w", err)
		}
		s.idempotency = idempotency.NewPostgresStore(s.pool, sealer)
	default:
		s.idempotency = idempotency.NewMemoryStore()
	}
	return nil
}

// prepareSchema applies a backend's pending migrations when configured to,
// and otherwise refuses to serve from a schema that lacks some: a request
// would fail on a missing table, far from the cause.
func (s *Server) prepareSchema(ctx context.Context, schema string, migrations fs.FS, what string) error {
	pool, err := s.postgresPool(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if s.cfg.Postgres.MigrateOnStart {
		_, err := migrate.Up(ctx, pool, schema, migrations, s.log)
		return err
	}
	statuses, err := migrate.Status(ctx, pool, schema, migrations)
	if err != nil {
		return err
	}
	var pending []string
	for _, st := range statuses {
		if st.Pending() {
			pending = append(pending, st.Name)
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("%s: the %s schema lacks migrations %v: run `plinth migrate up`, or set postgres.migrate_on_start", what, schema, pending)
	}
	return nil
}

// openSealer returns the sealer of sensitive data, making it on first use
// from the configured keyring.
func (s *Server) openSealer(ctx context.Context) (*seal.Sealer, error) {
	if s.sealer != nil {
		return s.sealer, nil
	}
	var (
		kr  keyring.Keyring
		err error
	)
	switch s.cfg.Keyring.Backend {
	case "local":
		kr, err = keyring.NewLocal(s.cfg.Keyring.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		s.log.Warn("sealing sensitive data with the LOCAL keyring: not for production (set keyring.backend = \"vault\")",
			"key_file", s.cfg.Keyring.KeyFile)
	case "vault":
		client, stop, err := vaultClient(ctx, s.cfg.Keyring, s.log)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		s.stopVault = stop
		kr = keyring.NewVault(client, s.cfg.Keyring.TransitMount, s.cfg.Keyring.KVMount)
	default:
		return nil, errors.New("sensitive data is sealed before it is stored outside memory: set keyring.backend (vault in production; local, with keyring.key_file, elsewhere)")
	}
	s.sealer = seal.New(kr)
	return s.sealer, nil
}

// postgresPool returns the shared pool, connecting on first use.
func (s *Server) postgresPool(ctx context.Context) (*pgxpool.Pool, error) {
	if s.pool != nil {
		return s.pool, nil
	}
	if s.cfg.Postgres.URL == "" {
		return nil, errors.New("a postgres backend needs a database: set postgres.url in the config file or PLINTH_POSTGRES_URL")
	}
	// OpenPostgres (vault.go) gets the credentials from Vault when
	// postgres.credentials says so.
	pool, closePool, err := OpenPostgres(ctx, s.cfg, s.log)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		closePool()
		cc := pool.Config().ConnConfig
		return nil, fmt.Errorf("postgres: cannot reach %s:%d/%s: %w", cc.Host, cc.Port, cc.Database, err)
	}
	s.pool, s.closePool = pool, closePool
	return pool, nil
}

// Rewrap rewraps the sealed data of every store that keeps some (see
// registry.Rewrapper), domain by domain, and reports each count to report.
// Idempotency records are left alone: they expire within the retention,
// and the old key version still opens them until then.
func (s *Server) Rewrap(ctx context.Context, report func(domain string, rewrapped int)) error {
	for _, d := range s.domains {
		r, ok := d.store.(registry.Rewrapper)
		if !ok {
			continue
		}
		n, err := r.Rewrap(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", d.domain.Name, err)
		}
		report(d.domain.Name, n)
	}
	return nil
}

// Bootstrap gives a new deployment its first principal, "admin" with the
// admin role, and returns its API key, shown this once; it returns "" if
// the deployment has a principal already.
func (s *Server) Bootstrap(ctx context.Context) (string, error) {
	return s.access.Bootstrap(ctx)
}

// Capabilities returns every capability the gateway serves, by domain and
// contract order.
func (s *Server) Capabilities() []Capability { return slices.Clone(s.capabilities) }

// Handler returns the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) buildHandler(tracing connect.Interceptor) (http.Handler, error) {
	validate, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	var outer []connect.Interceptor
	if tracing != nil {
		outer = append(outer, tracing)
	}
	m := newMetrics()
	mask := &masker{roles: s.roles}
	auditor := &auditor{audit: s.audit, masker: mask, metrics: m, log: s.log}
	// Load shedding sits inside the observer and outside the auditor: a
	// shed call is logged and counted, not audited (ratelimit.go).
	outer = append(outer, &observer{log: s.log, metrics: m}, newShedder(s.cfg.Limits, m, s.log), auditor)
	var enlist func(context.Context, connect.AnyRequest, connect.AnyResponse, error) (func(), error)
	if s.auditWithEffects {
		enlist = auditor.enlist
	}
	// The order of these options is the order of the onion in interceptor.go.
	mutating := map[string]bool{}
	for _, c := range s.capabilities {
		mutating[c.Procedure] = c.Mutates
	}
	scopes := map[string]string{}
	for _, c := range s.capabilities {
		scopes[c.Procedure] = c.Scope
	}
	opts := []connect.HandlerOption{
		connect.WithInterceptors(outer...),
		connect.WithRecover(recoverPanic(s.log)),
		connect.WithInterceptors(
			&authenticator{access: s.access, roles: s.roles, scopes: scopes},
			newRateLimiter(s.cfg.RateLimits, mutating, m),
			mask,
			&validator{v: validate, log: s.log},
			idempotency.NewInterceptor(s.idempotency, idempotency.Options{
				Mutating: func(procedure string) bool { return mutating[procedure] },
				// Keys are the caller's own: another principal's key of the
				// same name is another key.
				Caller: func(ctx context.Context) string {
					p, _ := PrincipalFrom(ctx)
					return p.ID
				},
				Log:    s.log,
				Enlist: enlist,
			}),
			NewErrorInterceptor(s.log),
		),
		connect.WithReadMaxBytes(int(s.cfg.Limits.MaxRequestBytes)),
		// Compressing a small answer costs more CPU than it saves bytes
		// (gzip was 7% of the gateway's CPU under MoveMoney load).
		connect.WithCompressMinBytes(1024),
	}

	mux := http.NewServeMux()
	services := make([]string, 0, len(s.domains))
	rest := &restRoutes{} // rest.go: the same handlers on their REST paths
	for _, d := range s.domains {
		var (
			path string
			h    http.Handler
			err  error
		)
		if d.domain.Name == accessDomain {
			path, h = accessv1connect.NewAccessServiceHandler(s.access, opts...)
		} else if path, h, err = d.domain.Mount(d.store, s.env, opts...); err != nil {
			return nil, fmt.Errorf("domain %s: %w", d.domain.Name, err)
		}
		mux.Handle(path, h)
		rest.add(path, h)
		services = append(services, string(d.domain.Service.FullName()))
	}
	if err := rest.mount(mux, s.capabilities, s.log, m); err != nil {
		return nil, err
	}

	mux.Handle(grpchealth.NewHandler(&healthChecker{server: s}))
	reflector := grpcreflect.NewStaticReflector(append(services, grpchealth.HealthV1ServiceName)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	// The capability catalog: contracts, not data, so no key is needed.
	entries := make([]catalog.Entry, 0, len(s.capabilities))
	for _, c := range s.capabilities {
		entries = append(entries, catalog.Entry{Procedure: c.Procedure, Domain: c.Domain, Method: c.Method,
			Owner: c.Owner, Scope: c.Scope, Mutates: c.Mutates, Stability: c.Stability, Summary: c.Summary,
			Routes: rest.catalogRoutes(c.Procedure)})
	}
	mux.Handle("GET /catalog", catalog.New(entries))
	mux.Handle("GET /{$}", http.RedirectHandler("/catalog", http.StatusFound))

	procedures := map[string]bool{}
	for _, c := range s.capabilities {
		procedures[c.Procedure] = true
	}
	return s.withCall(m, procedures, mux), nil
}

// readiness pings every backend that can be pinged, at once, and returns the
// domains that failed, with why (for the log only).
func (s *Server) readiness(ctx context.Context, onlyDomain string) map[string]error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		failures = map[string]error{}
	)
	for _, d := range s.domains {
		if onlyDomain != "" && d.domain.Name != onlyDomain {
			continue
		}
		p, ok := d.store.(registry.Pinger)
		if !ok {
			continue
		}
		wg.Go(func() {
			if err := p.Ping(ctx); err != nil {
				mu.Lock()
				failures[d.domain.Name] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failures
}

func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	type report struct {
		Ready       bool     `json:"ready"`
		Unreachable []string `json:"unreachable,omitempty"`
		Reason      string   `json:"reason,omitempty"`
	}
	rep := report{Ready: true}
	if s.shuttingDown.Load() {
		rep = report{Reason: "shutting down"}
	} else if failures := s.readiness(r.Context(), ""); len(failures) > 0 {
		rep.Ready = false
		for name, err := range failures {
			rep.Unreachable = append(rep.Unreachable, name)
			s.log.WarnContext(r.Context(), "backend not ready", "domain", name, "error", err.Error())
		}
		slices.Sort(rep.Unreachable)
	}
	w.Header().Set("Content-Type", "application/json")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rep)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting connections, reports not ready, lets in-flight calls finish
// (for at most limits.shutdown_timeout) and returns. It does not Close.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c, for gRPC without TLS
	srv := &http.Server{
		Handler:           s.handler,
		Protocols:         protocols,
		ReadHeaderTimeout: s.cfg.Limits.ReadHeaderTimeout.Std(),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	defer stopJanitor()
	retention := s.cfg.Idempotency.Retention.Std()
	go idempotency.RunJanitor(janitorCtx, s.idempotency, retention, min(retention/10, time.Hour), time.Now, s.log)
	chainerDone := make(chan struct{})
	go func() {
		defer close(chainerDone)
		s.audit.RunChainer(janitorCtx, auditChainInterval, func(err error) {
			s.log.Warn("audit: chaining the records of calls failed; retrying", "error", err.Error())
		})
	}()
	defer func() {
		stopJanitor()
		<-chainerDone
		// Chain what the last calls added, so that a clean stop leaves
		// nothing waiting.
		chainCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.audit.Chain(chainCtx); err != nil {
			s.log.Warn("audit: the records of the last calls stay unchained until the next start", "error", err.Error())
		}
	}()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.shuttingDown.Store(true)
	s.log.Info("shutting down: finishing in-flight calls", "timeout", s.cfg.Limits.ShutdownTimeout.Std().String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.ShutdownTimeout.Std())
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: in-flight calls did not finish in %s: %w", s.cfg.Limits.ShutdownTimeout.Std(), err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("shut down cleanly")
	return nil
}

// auditChainInterval is how often the audit's records are chained: how
// long a record waits, stored but not yet tamper-evident.
const auditChainInterval = 250 * time.Millisecond

// Close releases the backends, the PostgreSQL pool and the tracer.
func (s *Server) Close() error {
	var errs []error
	for _, d := range s.domains {
		if c, ok := d.store.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	if s.pool != nil {
		s.closePool() // and stops, and revokes, its credentials from Vault
	}
	if s.stopVault != nil {
		s.stopVault()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs = append(errs, s.stopTracing(ctx))
	return errors.Join(errs...)
}
