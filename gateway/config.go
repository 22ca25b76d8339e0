package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the gateway's configuration. It comes from a TOML file and then
// from environment variables, which override the file: every key has a
// variable named PLINTH_<SECTION>_<KEY> in upper case (PLINTH_LISTEN,
// PLINTH_LIMITS_REQUEST_TIMEOUT, PLINTH_BACKENDS_CUSTOMERS, ...). An unknown
// key in the file, an unknown PLINTH_ variable, or a bad value stops start-up
// with a message that names it. docs/configuration.md lists every key; keep
// the two in step (TestConfigDocsListEveryKey checks).
type Config struct {
	// Listen is the address the gateway serves on.
	// This value defaults to "127.0.0.1:8080".
	Listen string `toml:"listen"`

	// Log configures the structured log (log/slog) on standard error.
	Log LogConfig `toml:"log"`

	// Limits bound what one request may take.
	Limits LimitsConfig `toml:"limits"`

	// Postgres is the shared PostgreSQL pool that postgres backends use.
	Postgres PostgresConfig `toml:"postgres"`

	// Backends picks a backend per domain by name, e.g. customers = "postgres".
	// A domain not named here uses its default backend ("memory").
	Backends map[string]string `toml:"backends"`

	// Idempotency configures where idempotency keys are recorded.
	Idempotency IdempotencyConfig `toml:"idempotency"`

	// Auth configures who may do what.
	Auth AuthConfig `toml:"auth"`

	// Keyring configures the keys that seal sensitive data at rest.
	Keyring KeyringConfig `toml:"keyring"`

	// Tracing configures OpenTelemetry traces, off by default.
	Tracing TracingConfig `toml:"tracing"`

	// RateLimits bound the calls of each principal, per class of
	// capability: off by default.
	RateLimits RateLimitsConfig `toml:"rate_limits"`
}

// RateLimitsConfig bounds the rate of each principal's calls, with a token
// bucket per principal and class: "read" (capabilities whose contract does
// not say mutates) and "write" (those that change state). A call over its
// bucket is refused with ResourceExhausted and told when to retry. For
// example:
//
//	[rate_limits]
//	read = { rate = 200, burst = 400 }
//	write = { rate = 50, burst = 100 }
//
//	[rate_limits.principals.payroll-batch]
//	write = { rate = 500, burst = 1000 }
type RateLimitsConfig struct {
	// Read limits each principal's calls of capabilities that only read.
	// This value defaults to no limit (rate 0).
	Read RateLimit `toml:"read"`
	// Write limits each principal's calls of capabilities that change
	// state. This value defaults to no limit (rate 0).
	Write RateLimit `toml:"write"`
	// Principals overrides Read and Write for principals by name; a class
	// an override leaves out keeps the limit above. Set in the file only.
	Principals map[string]PrincipalRateLimits `toml:"principals"`
}

// RateLimit is a token bucket: Rate calls a second on average, and up to
// Burst at once after a quiet spell.
type RateLimit struct {
	// Rate is the sustained calls per second each principal may make; 0
	// means no limit. This value defaults to 0.
	Rate float64 `toml:"rate"`
	// Burst is how many calls a principal may make at once; at least 1
	// when Rate is set. This value defaults to 0.
	Burst int `toml:"burst"`
}

// PrincipalRateLimits are one principal's own limits; nil keeps the
// class's.
type PrincipalRateLimits struct {
	Read  *RateLimit `toml:"read"`
	Write *RateLimit `toml:"write"`
}

// AuthConfig configures authorization. Callers authenticate with API keys
// of principals (the access domain); a principal's roles say what it may
// do.
type AuthConfig struct {
	// Roles defines roles by name, each granting capability scopes and the
	// right to reveal sensitivity classes, e.g.
	//
	//	[auth.roles.support]
	//	scopes = ["customers.read"]
	//	reveal = ["pii"]
	//
	// The role "admin" is built in: every scope, every class. Roles have no
	// environment variables; they are set in the file.
	Roles map[string]RoleConfig `toml:"roles"`
}

// KeyringConfig configures the keyring: one key per sensitivity class
// wraps the data keys that seal sensitive fields before they reach storage.
type KeyringConfig struct {
	// Backend is "vault" (Vault Transit: production) or "local" (keys in
	// memory or in KeyFile: NOT for production). Required as soon as a
	// domain stores data outside memory. This value defaults to "".
	Backend string `toml:"backend"`
	// KeyFile is the local keyring's key file, created (0600) if missing;
	// empty keeps the keys in memory, so what they sealed cannot be read
	// after a restart. This value defaults to "".
	KeyFile string `toml:"key_file"`
	// VaultAddress is Vault's URL, e.g. "https://vault.internal:8200". The
	// token comes from the VAULT_TOKEN environment variable, never from a
	// file. This value defaults to "".
	VaultAddress string `toml:"vault_address"`
	// VaultAuth is how the vault keyring logs in: "token" (VAULT_TOKEN; dev
	// and tests) or "approle" (VAULT_ROLE_ID and VAULT_SECRET_ID;
	// production). Credentials come from the environment only. This value
	// defaults to "token".
	VaultAuth string `toml:"vault_auth"`
	// TransitMount is the mount of Vault's transit engine. This value
	// defaults to "transit".
	TransitMount string `toml:"transit_mount"`
	// KVMount is the mount of the KV v2 engine that keeps blind-index
	// keys. This value defaults to "secret".
	KVMount string `toml:"kv_mount"`
}

// IdempotencyConfig configures the records of idempotency keys.
type IdempotencyConfig struct {
	// Store is "memory" or "postgres". This value defaults to "", which
	// means postgres when any domain uses a postgres backend (so that a
	// record commits with its effect) and memory otherwise.
	Store string `toml:"store"`
	// Retention is how long a key's record is kept, at least 1m. This value
	// defaults to 24h.
	Retention Duration `toml:"retention"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is one of debug, info, warn, error. This value defaults to "info".
	Level string `toml:"level"`
	// Format is "json" or "text". This value defaults to "json".
	Format string `toml:"format"`
}

// LimitsConfig bounds requests.
type LimitsConfig struct {
	// MaxRequestBytes is the largest request body accepted; a larger one is
	// refused with ResourceExhausted. This value defaults to 1048576 (1 MiB).
	MaxRequestBytes int64 `toml:"max_request_bytes"`
	// RequestTimeout is the longest one call may run; a client may ask for
	// less with its own deadline. This value defaults to 30s.
	RequestTimeout Duration `toml:"request_timeout"`
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers. This value defaults to 10s.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// ShutdownTimeout is how long a graceful shutdown waits for in-flight
	// calls before closing their connections. This value defaults to 30s.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MaxInFlight bounds the capability calls the gateway runs at once; a
	// call over it waits up to QueueTimeout for one to end, and is then
	// refused with Unavailable and a retry hint (load shedding). 0 means no
	// bound. This value defaults to 256.
	MaxInFlight int `toml:"max_in_flight"`
	// QueueTimeout is how long a call over MaxInFlight may wait for a
	// call to end before it is shed; 0 sheds at once. This value defaults
	// to 100ms.
	QueueTimeout Duration `toml:"queue_timeout"`
}

// PostgresConfig configures the PostgreSQL pool.
type PostgresConfig struct {
	// URL is a PostgreSQL connection URL. It is required when any domain
	// uses a postgres backend. With credentials from Vault it names the
	// server, database and options (sslmode...) but no user or password.
	// This value defaults to "".
	URL string `toml:"url"`
	// Credentials is where the user and password come from: "url" (the
	// URL, PGPASSWORD or ~/.pgpass, as pgx reads them) or "vault" (dynamic
	// credentials from Vault's database secrets engine, renewed and
	// replaced before they expire; Vault's address and login are the
	// keyring's: keyring.vault_address and keyring.vault_auth). This value
	// defaults to "url".
	Credentials string `toml:"credentials"`
	// VaultMount is the mount of Vault's database secrets engine. This
	// value defaults to "database".
	VaultMount string `toml:"vault_mount"`
	// VaultRole is the database secrets engine's role whose credentials the
	// gateway logs in with (<vault_mount>/creds/<vault_role>). Required with
	// credentials from Vault. This value defaults to "".
	VaultRole string `toml:"vault_role"`
	// OwnerRole is the PostgreSQL role that every connection with
	// credentials from Vault switches to (SET ROLE), so that the tables
	// migrations create belong to it and not to a role Vault drops when its
	// lease ends. This value defaults to "plinth_owner".
	OwnerRole string `toml:"owner_role"`
	// MaxConns is the most connections the pool opens. This value defaults
	// to 10.
	MaxConns int `toml:"max_conns"`
	// MigrateOnStart applies pending schema migrations of the domains on
	// postgres before serving. This value defaults to false: production runs
	// `plinth migrate` as its own step.
	MigrateOnStart bool `toml:"migrate_on_start"`
}

// TracingConfig configures OpenTelemetry tracing.
type TracingConfig struct {
	// Exporter is "none", "stdout" (spans as JSON on standard output, for
	// debugging) or "otlp" (OTLP over HTTP to Endpoint). This value defaults
	// to "none".
	Exporter string `toml:"exporter"`
	// Endpoint is the OTLP/HTTP collector's URL, e.g.
	// "http://127.0.0.1:4318". Required with the otlp exporter.
	Endpoint string `toml:"endpoint"`
	// SampleRatio is the fraction of traces recorded, from 0 to 1. This
	// value defaults to 1.
	SampleRatio float64 `toml:"sample_ratio"`
}

// Duration is a time.Duration written as in Go ("30s", "1m30s").
type Duration time.Duration

// UnmarshalText parses a duration such as "30s".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"1m\", got %q", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// DefaultConfig returns the configuration used where the file and the
// environment say nothing.
func DefaultConfig() Config {
	return Config{
		Listen: "127.0.0.1:8080",
		Log:    LogConfig{Level: "info", Format: "json"},
		Limits: LimitsConfig{
			MaxRequestBytes:   1 << 20,
			RequestTimeout:    Duration(30 * time.Second),
			ReadHeaderTimeout: Duration(10 * time.Second),
			ShutdownTimeout:   Duration(30 * time.Second),
			MaxInFlight:       256,
			QueueTimeout:      Duration(100 * time.Millisecond),
		},
		Postgres:    PostgresConfig{MaxConns: 10, Credentials: "url", VaultMount: "database", OwnerRole: "plinth_owner"},
		Backends:    map[string]string{},
		Tracing:     TracingConfig{Exporter: "none", SampleRatio: 1},
		Idempotency: IdempotencyConfig{Retention: Duration(24 * time.Hour)},
		Keyring:     KeyringConfig{VaultAuth: "token", TransitMount: "transit", KVMount: "secret"},
	}
}

// envPrefix starts every environment variable the gateway reads.
const envPrefix = "PLINTH_"

// LoadConfig returns the defaults, overridden by the TOML file at path (if
// path is not empty), overridden by PLINTH_ variables in environ (as
// os.Environ returns them), and checks the result.
func LoadConfig(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&cfg)
		if err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
		if undecoded := md.Undecoded(); len(undecoded) > 0 {
			keys := make([]string, len(undecoded))
			for i, k := range undecoded {
				keys[i] = k.String()
			}
			return Config{}, fmt.Errorf("config file %s: unknown key %s (see docs/configuration.md for the keys)", path, strings.Join(keys, ", "))
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// envKeys returns every environment variable that sets a key of Config,
// mapped to a setter. Backends are handled apart: any PLINTH_BACKENDS_<X>.
func envKeys(cfg *Config) map[string]reflect.Value {
	keys := map[string]reflect.Value{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := strings.ToUpper(f.Tag.Get("toml"))
			fv := v.Field(i)
			switch {
			case f.Type.Kind() == reflect.Map:
				continue
			case f.Type.Kind() == reflect.Struct:
				walk(prefix+name+"_", fv)
			default:
				keys[prefix+name] = fv
			}
		}
	}
	walk(envPrefix, reflect.ValueOf(cfg).Elem())
	return keys
}

// EnvVars returns the names of the environment variables the gateway reads,
// sorted; PLINTH_BACKENDS_<DOMAIN> stands for one per domain.
func EnvVars() []string {
	cfg := DefaultConfig()
	var names []string
	for name := range envKeys(&cfg) {
		names = append(names, name)
	}
	names = append(names, envPrefix+"BACKENDS_<DOMAIN>")
	slices.Sort(names)
	return names
}

func applyEnv(cfg *Config, environ []string) error {
	keys := envKeys(cfg)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || strings.HasPrefix(name, envPrefix+"TEST_") {
			// PLINTH_TEST_* belong to the test harnesses, not the gateway.
			continue
		}
		if domain, ok := strings.CutPrefix(name, envPrefix+"BACKENDS_"); ok && domain != "" {
			if cfg.Backends == nil {
				cfg.Backends = map[string]string{}
			}
			cfg.Backends[strings.ToLower(domain)] = value
			continue
		}
		field, ok := keys[name]
		if !ok {
			return fmt.Errorf("environment: unknown variable %s (known: %s)", name, strings.Join(EnvVars(), ", "))
		}
		if err := setFromString(field, value); err != nil {
			return fmt.Errorf("environment: %s: %w", name, err)
		}
	}
	return nil
}

func setFromString(field reflect.Value, value string) error {
	if u, ok := field.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return u.UnmarshalText([]byte(value))
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(value)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", value)
		}
		field.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", value)
		}
		field.SetBool(b)
	case reflect.Float64:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", value)
		}
		field.SetFloat(f)
	default:
		return fmt.Errorf("unsupported type %s", field.Type())
	}
	return nil
}

// Validate checks every value and names the first bad one. Backend names are
// checked against the registry when the gateway starts.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "want host:port such as 127.0.0.1:8080, got %q", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("listen", "port must be a number from 0 to 65535, got %q", port)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		bad("log.format", "want json or text, got %q", c.Log.Format)
	}
	if c.Limits.MaxRequestBytes < 1024 || c.Limits.MaxRequestBytes > 64<<20 {
		bad("limits.max_request_bytes", "want 1024 to 67108864 (64 MiB), got %d", c.Limits.MaxRequestBytes)
	}
	for key, d := range map[string]Duration{
		"limits.request_timeout":     c.Limits.RequestTimeout,
		"limits.read_header_timeout": c.Limits.ReadHeaderTimeout,
		"limits.shutdown_timeout":    c.Limits.ShutdownTimeout,
	} {
		if d <= 0 {
			bad(key, "must be positive, got %s", d.Std())
		}
	}
	if c.Limits.MaxInFlight < 0 || c.Limits.MaxInFlight > 1_000_000 {
		bad("limits.max_in_flight", "want 0 (no bound) to 1000000, got %d", c.Limits.MaxInFlight)
	}
	if c.Limits.QueueTimeout < 0 || c.Limits.QueueTimeout > c.Limits.RequestTimeout {
		bad("limits.queue_timeout", "want 0 (shed at once) up to limits.request_timeout (%s), got %s", c.Limits.RequestTimeout.Std(), c.Limits.QueueTimeout.Std())
	}
	checkRateLimit := func(key string, r RateLimit) {
		switch {
		case r.Rate < 0 || math.IsNaN(r.Rate) || math.IsInf(r.Rate, 0):
			bad(key+".rate", "want calls per second, 0 for no limit, got %g", r.Rate)
		case r.Burst < 0:
			bad(key+".burst", "want 1 or more, got %d", r.Burst)
		case r.Rate > 0 && r.Burst < 1:
			bad(key+".burst", "a rate of %g calls per second needs a burst of at least 1 (twice the rate is a good start)", r.Rate)
		}
	}
	checkRateLimit("rate_limits.read", c.RateLimits.Read)
	checkRateLimit("rate_limits.write", c.RateLimits.Write)
	for name, p := range c.RateLimits.Principals {
		if p.Read == nil && p.Write == nil {
			bad("rate_limits.principals."+name, "sets neither read nor write")
		}
		if p.Read != nil {
			checkRateLimit("rate_limits.principals."+name+".read", *p.Read)
		}
		if p.Write != nil {
			checkRateLimit("rate_limits.principals."+name+".write", *p.Write)
		}
	}
	var pgURL *url.URL
	if c.Postgres.URL != "" {
		if u, err := url.Parse(c.Postgres.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The URL may hold a password: never repeat it.
			bad("postgres.url", "want a URL such as postgres://user@host:5432/db")
		} else {
			pgURL = u
		}
	}
	switch c.Postgres.Credentials {
	case "url":
	case "vault":
		if pgURL != nil {
			q := pgURL.Query()
			if _, hasPassword := pgURL.User.Password(); hasPassword || q.Has("password") {
				bad("postgres.url", "holds a password, but postgres.credentials = \"vault\": Vault gives the user and password; leave both out of the URL (postgres://host:5432/db)")
			} else if pgURL.User.Username() != "" || q.Has("user") {
				bad("postgres.url", "names a user, but postgres.credentials = \"vault\": Vault gives the user; leave it out of the URL (postgres://host:5432/db)")
			}
		}
		if c.Postgres.VaultMount == "" {
			bad("postgres.vault_mount", "credentials from Vault need the mount of its database secrets engine, such as database")
		}
		if c.Postgres.VaultRole == "" {
			bad("postgres.vault_role", "credentials from Vault need the database secrets engine's role to read (<vault_mount>/creds/<vault_role>)")
		}
		if c.Postgres.OwnerRole == "" {
			bad("postgres.owner_role", "credentials from Vault need a stable role to own the tables (the roles Vault makes are dropped when their leases end), such as plinth_owner")
		}
		if u, err := url.Parse(c.Keyring.VaultAddress); c.Keyring.Backend != "vault" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			// (With the vault keyring this is checked below.)
			bad("keyring.vault_address", "postgres.credentials = \"vault\" needs Vault's URL, such as https://vault.internal:8200, got %q", c.Keyring.VaultAddress)
		}
	default:
		bad("postgres.credentials", "want url or vault, got %q", c.Postgres.Credentials)
	}
	if c.Postgres.MaxConns < 1 || c.Postgres.MaxConns > 1000 {
		bad("postgres.max_conns", "want 1 to 1000, got %d", c.Postgres.MaxConns)
	}
	if !slices.Contains([]string{"", "memory", "postgres"}, c.Idempotency.Store) {
		bad("idempotency.store", "want memory or postgres (or nothing, to follow the backends), got %q", c.Idempotency.Store)
	}
	if c.Idempotency.Retention < Duration(time.Minute) {
		bad("idempotency.retention", "must be at least 1m, got %s", c.Idempotency.Retention.Std())
	}
	switch c.Keyring.Backend {
	case "", "local":
	case "vault":
		if u, err := url.Parse(c.Keyring.VaultAddress); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("keyring.vault_address", "the vault keyring needs Vault's URL, such as https://vault.internal:8200, got %q", c.Keyring.VaultAddress)
		}
	default:
		bad("keyring.backend", "want vault or local, got %q", c.Keyring.Backend)
	}
	if !slices.Contains([]string{"token", "approle"}, c.Keyring.VaultAuth) {
		bad("keyring.vault_auth", "want token or approle, got %q", c.Keyring.VaultAuth)
	}
	switch c.Tracing.Exporter {
	case "none", "stdout":
	case "otlp":
		if u, err := url.Parse(c.Tracing.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.endpoint", "the otlp exporter needs an http(s) URL such as http://127.0.0.1:4318, got %q", c.Tracing.Endpoint)
		}
	default:
		bad("tracing.exporter", "want none, stdout or otlp, got %q", c.Tracing.Exporter)
	}
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		bad("tracing.sample_ratio", "want 0 to 1, got %g", c.Tracing.SampleRatio)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
