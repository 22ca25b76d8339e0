package vaulttest

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
)

// Postgres is a database secrets engine that gives out credentials of a
// PostgreSQL database, as EnablePostgres sets it up.
type Postgres struct {
	// Mount is the engine's mount.
	Mount string
	// Role is the Vault role: <Mount>/creds/<Role> gives credentials.
	Role string
	// Owner is the NOLOGIN PostgreSQL role that owns the database; every
	// role Vault makes is a member of it (the gateway's postgres.owner_role).
	Owner string
	// URL is the database's URL without user or password, as the gateway's
	// postgres.url wants it when Vault gives the credentials.
	URL string

	ttl, maxTTL   time.Duration
	connURL       string // the database, for Vault: postgresql://{{username}}:{{password}}@host/db?...
	vaultUser     string // the PostgreSQL role Vault logs in as
	vaultPassword string
}

// VaultUser returns the PostgreSQL role Vault logs in as to make and drop
// roles: its sessions are Vault's, not the gateway's.
func (p *Postgres) VaultUser() string { return p.vaultUser }

// vaultConnection is the name of the engine's connection to the database.
const vaultConnection = "plinth"

// The Vault role's statements, as docs/configuration.md gives them to the
// DBA. Creation makes a member of the owner role (%[1]s), whose password
// works until the lease ends; revocation ends the role's sessions first,
// because PostgreSQL drops a role whose sessions are open and lets them go
// on (as the owner role, after SET ROLE). Renewal is Vault's default, which
// moves VALID UNTIL.
const (
	creationStatement   = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE %[1]s;`
	terminateStatement  = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';`
	revocationStatement = `DROP ROLE IF EXISTS "{{name}}";`
)

// EnablePostgres makes the PostgreSQL database at dbURL (a URL of its
// superuser, as pgtest.NewDatabase returns) give its credentials through
// Vault, as docs/configuration.md tells a DBA to:
//
//   - in PostgreSQL, a NOLOGIN owner role that owns the database, and a
//     login role for Vault, with a password, CREATEROLE, pg_signal_backend
//     and the owner role WITH ADMIN OPTION (so, no superuser);
//   - in Vault, the database secrets engine at mount (or a new mount
//     "database-<random>" when mount is ""), connected to the database as
//     that role, with a role "plinth" whose credentials are members of the
//     owner role and live ttl, renewable up to maxTTL.
//
// When the test ends the mount is disabled (Vault then revokes what it gave
// out), and the roles are dropped, with any that Vault made and did not
// drop (a Vault that was stopped, say).
func (s *Server) EnablePostgres(t testing.TB, mount, dbURL string, ttl, maxTTL time.Duration) *Postgres {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatal("vaulttest: EnablePostgres needs a postgres:// URL")
	}
	database := strings.TrimPrefix(u.Path, "/")
	q := u.Query()
	q.Del("user")
	q.Del("password")
	p := &Postgres{
		Role:          "plinth",
		Owner:         "plinth_owner_" + randomHex(6),
		ttl:           ttl,
		maxTTL:        maxTTL,
		vaultUser:     "plinth_vault_" + randomHex(6),
		vaultPassword: randomHex(16),
	}
	bare := url.URL{Scheme: "postgres", Host: u.Host, Path: u.Path, RawQuery: q.Encode()}
	p.URL = bare.String()
	// Vault fills in the templates; url.URL would escape the braces.
	p.connURL = "postgresql://{{username}}:{{password}}@" + u.Host + u.EscapedPath()
	if len(q) > 0 {
		p.connURL += "?" + q.Encode()
	}

	owner, vaultUser := pgx.Identifier{p.Owner}.Sanitize(), pgx.Identifier{p.vaultUser}.Sanitize()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("vaulttest: connect to the database as its superuser: %v", err)
	}
	defer conn.Close(context.Background())
	t.Cleanup(func() { dropPostgresRoles(t, dbURL, database, p) })
	for _, stmt := range []string{
		"CREATE ROLE " + owner + " NOLOGIN",
		"ALTER DATABASE " + pgx.Identifier{database}.Sanitize() + " OWNER TO " + owner,
		// A random hex password needs no escaping.
		"CREATE ROLE " + vaultUser + " LOGIN CREATEROLE PASSWORD '" + p.vaultPassword + "'",
		"GRANT pg_signal_backend TO " + vaultUser,
		"GRANT " + owner + " TO " + vaultUser + " WITH ADMIN OPTION",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			// Not the statement: one of them holds a password.
			t.Fatalf("vaulttest: prepare the database for Vault: %v", err)
		}
	}

	p.Mount = s.enable(t, mount, "database", &vaultapi.MountInput{Type: "database"})
	s.configurePostgres(t, p)
	return p
}

// RestorePostgres sets the database secrets engine up again in a server
// that was restarted (which comes back empty), as EnablePostgres did. The
// roles in PostgreSQL are still there.
func (s *Server) RestorePostgres(t testing.TB, p *Postgres) {
	t.Helper()
	c := s.Client(t)
	if err := c.Sys().MountWithContext(t.Context(), p.Mount, &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatalf("vaulttest: enable database at %s: %v", p.Mount, err)
	}
	s.configurePostgres(t, p)
}

// configurePostgres connects the engine at p.Mount to the database and
// writes the role.
func (s *Server) configurePostgres(t testing.TB, p *Postgres) {
	t.Helper()
	c := s.Client(t)
	if _, err := c.Logical().WriteWithContext(t.Context(), p.Mount+"/config/"+vaultConnection, map[string]any{
		"plugin_name":             "postgresql-database-plugin",
		"connection_url":          p.connURL,
		"username":                p.vaultUser,
		"password":                p.vaultPassword,
		"allowed_roles":           p.Role,
		"password_authentication": "scram-sha-256", // Vault sends a hash, not the password
	}); err != nil {
		t.Fatalf("vaulttest: connect the database secrets engine to PostgreSQL: %v", err)
	}
	if _, err := c.Logical().WriteWithContext(t.Context(), p.Mount+"/roles/"+p.Role, map[string]any{
		"db_name":               vaultConnection,
		"creation_statements":   []string{fmt.Sprintf(creationStatement, pgx.Identifier{p.Owner}.Sanitize())},
		"revocation_statements": []string{terminateStatement, revocationStatement},
		"default_ttl":           p.ttl.String(),
		"max_ttl":               p.maxTTL.String(),
	}); err != nil {
		t.Fatalf("vaulttest: write the database role %s: %v", p.Role, err)
	}
}

// dropPostgresRoles drops the roles of p: those Vault made and left (their
// sessions ended first), the owner (with what it owns in the test's
// database, which is about to be dropped) and Vault's.
func dropPostgresRoles(t testing.TB, dbURL, database string, p *Postgres) {
	// The test's own context is done by now: use a fresh one.
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Errorf("vaulttest: drop the roles of the database secrets engine: %v", err)
		return
	}
	defer conn.Close(ctx)
	var left []string
	rows, err := conn.Query(ctx, `SELECT r.rolname FROM pg_roles r
		JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles o ON o.oid = m.roleid
		WHERE o.rolname = $1 AND r.rolname <> $2`, p.Owner, p.vaultUser)
	if err == nil {
		left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Errorf("vaulttest: list the roles Vault made: %v", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1)`, left); err != nil {
		t.Errorf("vaulttest: end the sessions of the roles Vault made: %v", err)
	}
	owner := pgx.Identifier{p.Owner}.Sanitize()
	var stmts []string
	for _, r := range left {
		stmts = append(stmts, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
	}
	stmts = append(stmts,
		"ALTER DATABASE "+pgx.Identifier{database}.Sanitize()+" OWNER TO CURRENT_USER",
		"DROP OWNED BY "+owner,
		"DROP ROLE IF EXISTS "+owner,
		"DROP ROLE IF EXISTS "+pgx.Identifier{p.vaultUser}.Sanitize(),
	)
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Errorf("vaulttest: %s: %v", stmt, err)
		}
	}
}
