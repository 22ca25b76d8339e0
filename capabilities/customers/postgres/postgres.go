// Package postgres is the PostgreSQL customers backend, over pgx. It keeps
// the same invariants and returns the same errors as the memory backend
// (both pass customerstest.Run), and keeps customers across restarts.
//
// The schema (migrations/, applied by `plinth migrate` through
// internal/migrate, never by the backend itself) lives in the PostgreSQL
// schema "customers":
//
//	customers.customers      id, state, email_lookup, timestamps: nothing
//	   │ 1                   sensitive, so it can be indexed and listed
//	   │
//	   │ 1
//	customers.customer_pii   name, email, phone, ...: one bytea column per
//	                         PII field, each written through a fieldCodec
//	                         (sealed at rest once issue 4 lands)
//
// Every customer has exactly one customer_pii row, written in the same
// transaction as its customers row.
package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"plinth.dev/plinth/capabilities/customers"
	"plinth.dev/plinth/capabilities/domainerr"
	"plinth.dev/plinth/capabilities/registry"
	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/pgtx"
	"plinth.dev/plinth/internal/seal"
)

// Store keeps customers in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	sealer *seal.Sealer // seals PII before it reaches the database
	codec  fieldCodec   // what the PII columns hold
}

var (
	_ customers.Store      = (*Store)(nil)
	_ customers.EmailKeyer = (*Store)(nil)
	_ registry.Pinger      = (*Store)(nil)
)

// New returns a Store over pool, whose database must have the customers
// migrations applied. New does not touch the database, and the Store never
// closes pool: whoever made the pool (the gateway, shared by every domain)
// closes it.
//
// Every PII value is sealed with sealer (AES-256-GCM under data keys the
// keyring wraps with the PII class key, bound to its table, column and
// row) before it is written, and the email is found through a keyed blind
// index (EmailKey), so the database never holds PII in the clear.
func New(pool *pgxpool.Pool, sealer *seal.Sealer) *Store {
	return &Store{pool: pool, sealer: sealer, codec: sealingCodec{sealer}}
}

// emailIndexPurpose names the blind index of emails: its key is the
// keyring's for this purpose alone.
const emailIndexPurpose = "customers.email"

// EmailKey returns the keyed blind index of an email: HMAC-SHA-256, under
// a key the keyring keeps, of the email in lower case, in hex. Equal emails
// (regardless of case) get equal keys; the key cannot be turned back into
// the email without the keyring.
func (s *Store) EmailKey(ctx context.Context, email string) (string, error) {
	idx, err := s.sealer.BlindIndex(ctx, emailIndexPurpose, []byte(customers.CaseInsensitiveEmailKey(email)))
	if err != nil {
		return "", keyringFailure("index an email", err)
	}
	return hex.EncodeToString(idx), nil
}

// The tables, and the names of the constraints whose violations mean
// something to callers.
const (
	customersTable = "customers.customers"
	piiTable       = "customers.customer_pii"

	constraintPrimaryKey = "customers_pkey"
	constraintEmailKey   = "customers_email_lookup_key"
)

// selectCustomer reads customers with their PII. The join is an outer one
// so that a customer whose PII row is missing (which the schema cannot
// rule out, though this package always writes both rows together) is an
// error, not a customer that silently drops out of listings.
const selectCustomer = `
SELECT c.id, c.state, c.state_reason, c.email_lookup, c.created_at, c.updated_at,
       p.customer_id IS NOT NULL, p.name, p.email, p.phone, p.date_of_birth, p.address, p.tax_id
  FROM ` + customersTable + ` c
  LEFT JOIN ` + piiTable + ` p ON p.customer_id = c.id`

// Create stores a new customer.
func (s *Store) Create(ctx context.Context, c customers.Customer) error {
	c = withStoredTimes(c)
	pii, err := s.seal(ctx, c)
	if err != nil {
		return err
	}
	err = pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
INSERT INTO `+customersTable+` (id, state, state_reason, email_lookup, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)`,
			c.ID, c.State.String(), c.StateReason, c.EmailKey, c.CreatedAt, c.UpdatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
INSERT INTO `+piiTable+` (customer_id, name, email, phone, date_of_birth, address, tax_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			c.ID, pii.name, pii.email, pii.phone, pii.dateOfBirth, pii.address, pii.taxID)
		return err
	})
	if err != nil {
		if violated(err, constraintEmailKey) {
			return &customers.EmailTakenError{}
		}
		if violated(err, constraintPrimaryKey) {
			// PostgreSQL checks the primary key first; the memory backend
			// checks the email first. Answer as it does when both clash.
			var emailTaken bool
			if err := pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+customersTable+` WHERE email_lookup = $1)`,
				c.EmailKey).Scan(&emailTaken); err != nil {
				return s.fail(ctx, "create customer "+c.ID, err)
			}
			if emailTaken {
				return &customers.EmailTakenError{}
			}
			return &domainerr.AlreadyExistsError{Resource: "customer", ID: c.ID}
		}
		return s.fail(ctx, "create customer "+c.ID, err)
	}
	return nil
}

// Get returns the customer with the id.
func (s *Store) Get(ctx context.Context, id string) (customers.Customer, error) {
	c, err := s.scan(ctx, pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, selectCustomer+` WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return customers.Customer{}, customers.NotFound(id)
	}
	if err != nil {
		return customers.Customer{}, s.fail(ctx, "get customer "+id, err)
	}
	return c, nil
}

// GetByEmailKey returns the customer whose EmailKey is key.
func (s *Store) GetByEmailKey(ctx context.Context, key string) (customers.Customer, error) {
	c, err := s.scan(ctx, pgtx.QuerierFor(ctx, s.pool).QueryRow(ctx, selectCustomer+` WHERE c.email_lookup = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return customers.Customer{}, &domainerr.NotFoundError{Resource: "customer with this email"}
	}
	if err != nil {
		// Not the key: it is derived from the email.
		return customers.Customer{}, s.fail(ctx, "get customer by email", err)
	}
	return c, nil
}

// List returns a page of customers ordered by id. It pages by keyset (ids
// greater than the last one seen), so customers signing up meanwhile
// neither shift pages nor appear twice.
func (s *Store) List(ctx context.Context, q customers.ListQuery) ([]customers.Customer, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	query, args := selectCustomer+` WHERE c.id > $1 ORDER BY c.id LIMIT $2`, []any{q.AfterID, q.Limit}
	if q.State != customers.StateUnspecified {
		query, args = selectCustomer+` WHERE c.id > $1 AND c.state = $2 ORDER BY c.id LIMIT $3`,
			[]any{q.AfterID, q.State.String(), q.Limit}
	}
	rows, err := pgtx.QuerierFor(ctx, s.pool).Query(ctx, query, args...)
	if err != nil {
		return nil, s.fail(ctx, "list customers", err)
	}
	defer rows.Close()
	var page []customers.Customer
	for rows.Next() {
		c, err := s.scan(ctx, rows)
		if err != nil {
			return nil, s.fail(ctx, "list customers", err)
		}
		page = append(page, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "list customers", err)
	}
	return page, nil
}

// Update changes one customer in one transaction: it locks the customer's
// row (SELECT ... FOR UPDATE), so that concurrent Updates of the customer
// wait for each other, reads the customer, calls change, and writes back
// what change made. If
// change fails, the transaction is rolled back and its error returned as
// is.
func (s *Store) Update(ctx context.Context, id string, change func(*customers.Customer) error) (customers.Customer, error) {
	var (
		updated   customers.Customer
		changeErr error // change's own error, to return untouched
	)
	err := pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock first, then read, in two statements. One statement
		// (SELECT ... JOIN ... FOR UPDATE OF c) would lose updates: in
		// READ COMMITTED, after waiting for the lock PostgreSQL re-reads
		// the locked customers row but keeps the customer_pii row from
		// before the wait, so change would see stale PII and write it
		// back. The second statement reads after the lock is ours.
		if _, err := tx.Exec(ctx, `SELECT FROM `+customersTable+` WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		c, err := s.scan(ctx, tx.QueryRow(ctx, selectCustomer+` WHERE c.id = $1`, id))
		if err != nil {
			return err
		}
		if changeErr = change(&c); changeErr != nil {
			return changeErr
		}
		if c.ID != id {
			// The service never re-keys a customer; a change that does is
			// a bug, refused before it could move a customer's PII.
			return errors.New("change altered the customer's id")
		}
		c = withStoredTimes(c)
		pii, err := s.seal(ctx, c)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
UPDATE `+customersTable+`
   SET state = $2, state_reason = $3, email_lookup = $4, created_at = $5, updated_at = $6
 WHERE id = $1`,
			id, c.State.String(), c.StateReason, c.EmailKey, c.CreatedAt, c.UpdatedAt); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
UPDATE `+piiTable+`
   SET name = $2, email = $3, phone = $4, date_of_birth = $5, address = $6, tax_id = $7
 WHERE customer_id = $1`,
			id, pii.name, pii.email, pii.phone, pii.dateOfBirth, pii.address, pii.taxID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("customer has no PII row")
		}
		updated = c
		return nil
	})
	switch {
	case changeErr != nil:
		return customers.Customer{}, changeErr
	case errors.Is(err, pgx.ErrNoRows):
		return customers.Customer{}, customers.NotFound(id)
	case violated(err, constraintEmailKey):
		return customers.Customer{}, &customers.EmailTakenError{}
	case err != nil:
		return customers.Customer{}, s.fail(ctx, "update customer "+id, err)
	}
	return updated, nil
}

// Ping reports whether the database can be reached, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail(ctx, "ping", err)
	}
	return nil
}

// withStoredTimes returns c with its times as the database keeps them: in
// microseconds (truncated, as the service does, rather than rounded, as
// PostgreSQL would) and read back in UTC. What Update returns is then
// exactly what a later Get does.
func withStoredTimes(c customers.Customer) customers.Customer {
	c.CreatedAt = c.CreatedAt.UTC().Truncate(time.Microsecond)
	c.UpdatedAt = c.UpdatedAt.UTC().Truncate(time.Microsecond)
	return c
}

// --- PII --------------------------------------------------------------------

// sealedPII is what the PII columns of one customer hold. A nil field is
// stored as NULL: an optional field that is not given.
type sealedPII struct {
	name, email, phone, dateOfBirth, address, taxID []byte
}

// seal makes the PII columns of c.
func (s *Store) seal(ctx context.Context, c customers.Customer) (sealedPII, error) {
	var (
		out  sealedPII
		errs []error
	)
	field := func(column string, value []byte, optional bool) []byte {
		if optional && len(value) == 0 {
			return nil
		}
		sealed, err := s.codec.Seal(ctx, seal.Place{Table: piiTable, Column: column, Row: c.ID}, value)
		errs = append(errs, err)
		return sealed
	}
	out.name = field("name", []byte(c.Profile.Name), false)
	out.email = field("email", []byte(c.Email), false)
	out.phone = field("phone", []byte(c.Profile.Phone), true)
	out.dateOfBirth = field("date_of_birth", []byte(c.Profile.DateOfBirth), true)
	out.taxID = field("tax_id", []byte(c.Profile.TaxID), true)
	if c.Profile.Address != nil {
		address, err := json.Marshal(c.Profile.Address)
		if err != nil {
			return sealedPII{}, fmt.Errorf("customers/postgres: encode the address of customer %s: %w", c.ID, err)
		}
		out.address = field("address", address, false)
	}
	if err := errors.Join(errs...); err != nil {
		return sealedPII{}, keyringFailure("seal the PII of customer "+c.ID, err)
	}
	return out, nil
}

// open fills the PII fields of c from its columns.
func (s *Store) open(ctx context.Context, c *customers.Customer, pii sealedPII) error {
	var errs []error
	field := func(column string, sealed []byte) []byte {
		if sealed == nil { // NULL: an optional field not given
			return nil
		}
		plain, err := s.codec.Open(ctx, seal.Place{Table: piiTable, Column: column, Row: c.ID}, sealed)
		errs = append(errs, err)
		return plain
	}
	c.Profile.Name = string(field("name", pii.name))
	c.Email = string(field("email", pii.email))
	c.Profile.Phone = string(field("phone", pii.phone))
	c.Profile.DateOfBirth = string(field("date_of_birth", pii.dateOfBirth))
	c.Profile.TaxID = string(field("tax_id", pii.taxID))
	if address := field("address", pii.address); address != nil {
		c.Profile.Address = new(customers.Address)
		if err := json.Unmarshal(address, c.Profile.Address); err != nil {
			// Not err itself: a JSON error may quote the address.
			errs = append(errs, fmt.Errorf("the address of customer %s is not the JSON of an address", c.ID))
		}
	}
	return errors.Join(errs...)
}

// scan reads one row of selectCustomer.
func (s *Store) scan(ctx context.Context, row pgx.Row) (customers.Customer, error) {
	var (
		c         customers.Customer
		state     string
		hasPII    bool
		pii       sealedPII
		createdAt time.Time
		updatedAt time.Time
	)
	if err := row.Scan(&c.ID, &state, &c.StateReason, &c.EmailKey, &createdAt, &updatedAt,
		&hasPII, &pii.name, &pii.email, &pii.phone, &pii.dateOfBirth, &pii.address, &pii.taxID); err != nil {
		return customers.Customer{}, err
	}
	st, err := customers.ParseState(state)
	if err != nil {
		return customers.Customer{}, fmt.Errorf("customer %s: %w", c.ID, err)
	}
	c.State = st
	c.CreatedAt, c.UpdatedAt = createdAt.UTC(), updatedAt.UTC()
	if !hasPII {
		return customers.Customer{}, fmt.Errorf("customer %s has no PII row", c.ID)
	}
	if err := s.open(ctx, &c, pii); err != nil {
		return customers.Customer{}, keyringFailure("open the PII of customer "+c.ID, err)
	}
	return c, nil
}

// --- Errors -----------------------------------------------------------------

// violated reports whether err violates the unique constraint named
// constraint.
func violated(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// keyringFailure wraps an error of sealing, opening or indexing: a keyring
// that cannot be reached makes the call Unavailable (nothing is written
// unsealed: the write never happens); anything else (a value that does not
// open where it is) is an internal error. Neither repeats a value.
func keyringFailure(op string, err error) error {
	if errors.Is(err, keyring.ErrUnavailable) {
		return &domainerr.UnavailableError{Dependency: "key service", Err: fmt.Errorf("customers/postgres: %s: %w", op, err)}
	}
	return fmt.Errorf("customers/postgres: %s: %w", op, err)
}

// fail wraps an error of op (an operation on a customer, never a sensitive
// value): a lost connection becomes Unavailable, a lost race Aborted (see
// pgtx.Classify).
func (s *Store) fail(ctx context.Context, op string, err error) error {
	return pgtx.Classify(ctx, "customers/postgres: "+op, err)
}
