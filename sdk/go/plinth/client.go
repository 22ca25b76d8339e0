package plinth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"connectrpc.com/connect"

	"plinth.dev/plinth/sdk/go/gen/plinth/access/v1/accessv1connect"
	"plinth.dev/plinth/sdk/go/gen/plinth/audit/v1/auditv1connect"
	"plinth.dev/plinth/sdk/go/gen/plinth/customers/v1/customersv1connect"
	"plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1/ledgerv1connect"
	"plinth.dev/plinth/sdk/go/gen/plinth/resources/v1/resourcesv1connect"
)

// Client calls Plinth's capabilities, one field per domain. Make it with
// New; it is safe for concurrent use and meant to be made once and shared.
//
// Each field embeds the domain's generated Connect client, so it has one
// method per capability, and adds an All... method per List capability.
// The fields may be replaced, by a fake of the generated client's
// interface in tests, say; the All... methods then page through the fake.
type Client struct {
	// Customers calls the customers domain: sign-up, review and lifecycle
	// of the people a product serves.
	Customers CustomersClient
	// Ledger calls the ledger domain: accounts, transfers, holds and
	// balances.
	Ledger LedgerClient
	// Access calls the access domain: principals, their roles and their
	// API keys.
	Access AccessClient
	// Audit calls the audit domain: the hash-chained record of every call.
	Audit AuditClient
	// Resources calls the resources domain: everything a customer owns,
	// across every domain.
	Resources ResourcesClient
}

// CustomersClient calls plinth.customers.v1.CustomerService. It has every
// method of the generated client, and AllCustomers.
type CustomersClient struct {
	customersv1connect.CustomerServiceClient
}

// LedgerClient calls plinth.ledger.v1.LedgerService. It has every method
// of the generated client, and AllLedgerAccounts, AllTransfers and
// AllAccountEntries.
type LedgerClient struct {
	ledgerv1connect.LedgerServiceClient
}

// AccessClient calls plinth.access.v1.AccessService. It has every method
// of the generated client, and AllPrincipals and AllApiKeys.
type AccessClient struct {
	accessv1connect.AccessServiceClient
}

// AuditClient calls plinth.audit.v1.AuditService. It has every method of
// the generated client, and AllAuditRecords.
type AuditClient struct {
	auditv1connect.AuditServiceClient
}

// ResourcesClient calls plinth.resources.v1.ResourceService. It has every
// method of the generated client, and AllCustomerResources.
type ResourcesClient struct {
	resourcesv1connect.ResourceServiceClient
}

// Option configures a Client made by New.
type Option func(*config)

type config struct {
	httpClient  connect.HTTPClient
	retry       RetryPolicy
	userAgent   string
	connectOpts []connect.ClientOption
	errs        []error
}

// WithHTTPClient makes the Client send its requests with c instead of
// http.DefaultClient: to set a transport, a proxy or TLS settings. To
// speak gRPC rather than the Connect protocol, give a client that speaks
// HTTP/2 and add connect.WithGRPC() with WithConnectOptions.
func WithHTTPClient(c connect.HTTPClient) Option {
	return func(cfg *config) {
		if c == nil {
			cfg.errs = append(cfg.errs, errors.New("plinth: WithHTTPClient was given a nil client"))
			return
		}
		cfg.httpClient = c
	}
}

// WithRetry makes the Client retry as p says instead of as
// DefaultRetryPolicy says. A zero field of p takes the default's value.
func WithRetry(p RetryPolicy) Option {
	return func(cfg *config) {
		if err := p.check(); err != nil {
			cfg.errs = append(cfg.errs, err)
			return
		}
		cfg.retry = p.withDefaults()
	}
}

// WithoutRetries makes the Client send every call once: a call that fails
// returns its error at once. Mutating calls still get an idempotency key,
// so the caller can retry them safely itself by sending the same request,
// key included, again.
func WithoutRetries() Option {
	return func(cfg *config) { cfg.retry = RetryPolicy{MaxAttempts: 1} }
}

// WithUserAgent puts product (such as "payroll-app/1.4") at the front of
// the User-Agent header of every call, so that the gateway's operators can
// tell callers apart.
func WithUserAgent(product string) Option {
	return func(cfg *config) {
		if strings.ContainsFunc(product, func(r rune) bool { return r < 0x20 || r == 0x7f || r > 0x7e }) {
			cfg.errs = append(cfg.errs, fmt.Errorf("plinth: user agent %q has a character a header cannot carry", product))
			return
		}
		cfg.userAgent = strings.TrimSpace(product)
	}
}

// WithConnectOptions passes options to every generated client, after the
// Client's own: connect.WithGRPC() to speak gRPC, connect.WithInterceptors
// to observe calls, and so on. Interceptors given here run inside the
// Client's retries, once per attempt, after the API key and the
// idempotency key are set.
func WithConnectOptions(opts ...connect.ClientOption) Option {
	return func(cfg *config) { cfg.connectOpts = append(cfg.connectOpts, opts...) }
}

// New returns a Client for the gateway at baseURL (such as
// "https://plinth.example.com", or "http://127.0.0.1:8080" for `plinth
// dev`) that authenticates every call with apiKey ("plk_..."). It checks
// its arguments and makes no call; the first error shows up on the first
// call.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	base, err := checkBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if err := checkAPIKey(apiKey); err != nil {
		return nil, err
	}
	cfg := config{httpClient: http.DefaultClient, retry: DefaultRetryPolicy()}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	// Outermost first: the API key and the idempotency key are set once,
	// and every retry sends the same ones.
	interceptors := []connect.Interceptor{apiKeyInterceptor(apiKey)}
	if cfg.userAgent != "" {
		interceptors = append(interceptors, userAgent(cfg.userAgent))
	}
	interceptors = append(interceptors, idempotencyKeys{}, retrier{policy: cfg.retry})
	copts := append([]connect.ClientOption{connect.WithInterceptors(interceptors...)}, cfg.connectOpts...)
	return &Client{
		Customers: CustomersClient{customersv1connect.NewCustomerServiceClient(cfg.httpClient, base, copts...)},
		Ledger:    LedgerClient{ledgerv1connect.NewLedgerServiceClient(cfg.httpClient, base, copts...)},
		Access:    AccessClient{accessv1connect.NewAccessServiceClient(cfg.httpClient, base, copts...)},
		Audit:     AuditClient{auditv1connect.NewAuditServiceClient(cfg.httpClient, base, copts...)},
		Resources: ResourcesClient{resourcesv1connect.NewResourceServiceClient(cfg.httpClient, base, copts...)},
	}, nil
}

// apiKeyInterceptor is the interceptor WithAPIKey installs.
func apiKeyInterceptor(key string) connect.Interceptor { return apiKey(key) }

// checkBaseURL returns baseURL without a trailing slash, or why it is not
// the base URL of a gateway.
func checkBaseURL(baseURL string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("plinth: base URL %q %s; want an http:// or https:// URL such as \"http://127.0.0.1:8080\"", baseURL, why)
	}
	if strings.TrimSpace(baseURL) == "" {
		return "", errors.New(`plinth: the base URL is empty; want an http:// or https:// URL such as "http://127.0.0.1:8080"`)
	}
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		return "", bad("does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("has no http or https scheme")
	case u.Host == "":
		return "", bad("has no host")
	case u.User != nil:
		return "", bad("holds credentials; pass the API key as New's second argument")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", bad("has a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// checkAPIKey refuses a key that cannot be an API key.
func checkAPIKey(key string) error {
	if key == "" {
		return errors.New("plinth: the API key is empty; use a key from IssueApiKey or `plinth bootstrap` (plk_...)")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return r <= 0x20 || r >= 0x7f }) {
		return errors.New(`plinth: the API key has a space, a control or a non-ASCII character; pass the key itself (plk_...), without "Bearer "`)
	}
	return nil
}

// userAgent puts a product at the front of the User-Agent header.
type userAgent string

func (u userAgent) set(h http.Header) {
	if ua := h.Get("User-Agent"); ua != "" {
		h.Set("User-Agent", string(u)+" "+ua)
	} else {
		h.Set("User-Agent", string(u))
	}
}

func (u userAgent) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		u.set(req.Header())
		return next(ctx, req)
	}
}

func (u userAgent) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		u.set(conn.RequestHeader())
		return conn
	}
}

func (u userAgent) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
