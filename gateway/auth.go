package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"plinth.dev/plinth/capabilities/access"
)

// AdminRole is the built-in role that grants every scope and the right to
// reveal every sensitivity class. `plinth dev` and `plinth bootstrap` give
// it to the first principal.
const AdminRole = "admin"

// Sensitivity classes a role may reveal, as configuration names them.
var revealClasses = []string{"pii", "pci", "phi"}

// RoleConfig is what one role grants: capability scopes, and separately the
// right to reveal sensitive data of some classes.
type RoleConfig struct {
	// Scopes are capability scopes, as the contracts declare them
	// (e.g. "customers.read").
	Scopes []string `toml:"scopes"`
	// Reveal lists the sensitivity classes the role may see in full:
	// "pii", "pci", "phi".
	Reveal []string `toml:"reveal"`
}

// roles resolves principals' role names to what they grant.
type roles struct {
	byName map[string]RoleConfig
}

// newRoles checks the configured roles against the scopes the contracts
// declare, and adds the built-in admin role.
func newRoles(configured map[string]RoleConfig, caps []Capability) (*roles, error) {
	known := map[string]bool{}
	for _, c := range caps {
		known[c.Scope] = true
	}
	all := make([]string, 0, len(known))
	for s := range known {
		all = append(all, s)
	}
	slices.Sort(all)
	r := &roles{byName: map[string]RoleConfig{AdminRole: {Scopes: all, Reveal: revealClasses}}}
	var errs []error
	for name, role := range configured {
		if name == AdminRole {
			errs = append(errs, fmt.Errorf("config: auth.roles.%s: the admin role is built in and cannot be redefined", name))
			continue
		}
		for _, s := range role.Scopes {
			if !known[s] {
				errs = append(errs, fmt.Errorf("config: auth.roles.%s: unknown scope %q (the contracts declare: %s)", name, s, strings.Join(all, ", ")))
			}
		}
		for _, c := range role.Reveal {
			if !slices.Contains(revealClasses, c) {
				errs = append(errs, fmt.Errorf("config: auth.roles.%s: reveal: unknown class %q (want pii, pci or phi)", name, c))
			}
		}
		r.byName[name] = role
	}
	return r, errors.Join(errs...)
}

func (r *roles) exists(name string) bool { _, ok := r.byName[name]; return ok }

// grants reports whether any of roleNames grants scope.
func (r *roles) grants(roleNames []string, scope string) bool {
	for _, n := range roleNames {
		if slices.Contains(r.byName[n].Scopes, scope) {
			return true
		}
	}
	return false
}

// mayReveal reports whether any of roleNames may reveal class.
func (r *roles) mayReveal(roleNames []string, class string) bool {
	for _, n := range roleNames {
		if slices.Contains(r.byName[n].Reveal, class) {
			return true
		}
	}
	return false
}

// authenticator authenticates every capability call with its bearer API
// key and authorizes it against the scope its contract declares. Anything
// not granted is denied.
type authenticator struct {
	access *access.Service
	roles  *roles
	scopes map[string]string // procedure -> scope
}

// unauthenticated is the one answer to every failed authentication: it
// does not say whether the key was missing, malformed, unknown, revoked or
// expired.
var unauthenticated = connect.NewError(connect.CodeUnauthenticated,
	errors.New("a valid API key is required: send it as \"Authorization: Bearer <key>\""))

func (a *authenticator) authorize(ctx context.Context, procedure string, header interface{ Get(string) string }) (context.Context, error) {
	scope, ok := a.scopes[procedure]
	if !ok {
		// Not a capability: the gateway serves nothing else through this
		// chain, so refuse rather than guess.
		return ctx, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is not a capability", procedure))
	}
	presented, ok := strings.CutPrefix(header.Get("Authorization"), "Bearer ")
	if !ok || presented == "" {
		return ctx, unauthenticated
	}
	p, err := a.access.Authenticate(ctx, strings.TrimSpace(presented))
	if err != nil {
		if errors.Is(err, access.ErrUnauthenticated) {
			return ctx, unauthenticated
		}
		return ctx, err // an outage of the access store: Unavailable
	}
	ctx, c := ensureCall(ctx)
	// Known from here on, refused or not: the audit names who tried.
	c.noteAuthenticated(p.ID)
	if !a.roles.grants(p.Roles, scope) {
		return ctx, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("principal %s (%s) may not call this capability: it needs scope %q, which none of its roles grants", p.Name, p.ID, scope))
	}
	c.noteAuthorized(p)
	return ctx, nil
}

func (a *authenticator) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := a.authorize(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a *authenticator) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authenticator) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := a.authorize(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// accessDomain is the registry name of the access domain, whose Service the
// gateway keeps to authenticate calls.
const accessDomain = "access"
