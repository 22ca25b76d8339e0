package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/pgtx"
)

// rewrapBatch is how many customers one transaction of Rewrap covers.
const rewrapBatch = 200

// Rewrap rewraps the data key of every sealed PII value under the latest
// version of the PII class key, after the key was rotated in the keyring,
// and returns how many customers' values it rewrote. The ciphertexts stay
// as they are (the values are never opened); a batch of customers is
// rewritten per transaction, locked while it is, so it runs beside traffic.
// Running it again rewraps again: it is safe to repeat after a failure.
func (s *Store) Rewrap(ctx context.Context) (int, error) {
	total, after := 0, ""
	for {
		n, last, err := s.rewrapBatch(ctx, after)
		if err != nil {
			return total, err
		}
		total += n
		if n < rewrapBatch {
			return total, nil
		}
		after = last
	}
}

func (s *Store) rewrapBatch(ctx context.Context, after string) (n int, last string, err error) {
	err = pgtx.Run(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT customer_id, name, email, phone, date_of_birth, address, tax_id FROM `+piiTable+`
 WHERE customer_id > $1 ORDER BY customer_id LIMIT $2 FOR UPDATE`, after, rewrapBatch)
		if err != nil {
			return err
		}
		type row struct {
			id     string
			values [6][]byte
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.values[0], &r.values[1], &r.values[2], &r.values[3], &r.values[4], &r.values[5]); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range batch {
			// Only sealed values (not NULL, not the legacy unsealed format);
			// a customer's values usually share a data key, rewrapped once.
			var sealed [][]byte
			var at []int
			for i, v := range r.values {
				if len(v) > 0 && v[0] != formatPlaintext {
					sealed, at = append(sealed, v), append(at, i)
				}
			}
			if len(sealed) == 0 {
				continue
			}
			out, err := s.sealer.RewrapAll(ctx, keyring.PII, sealed)
			if err != nil {
				return keyringFailure("rewrap the PII of customer "+r.id, err)
			}
			for j, i := range at {
				r.values[i] = out[j]
			}
			if _, err := tx.Exec(ctx, `
UPDATE `+piiTable+` SET name = $2, email = $3, phone = $4, date_of_birth = $5, address = $6, tax_id = $7
 WHERE customer_id = $1`, r.id, r.values[0], r.values[1], r.values[2], r.values[3], r.values[4], r.values[5]); err != nil {
				return err
			}
		}
		n = len(batch)
		if n > 0 {
			last = batch[n-1].id
		}
		return nil
	})
	if err != nil {
		return 0, "", s.fail(ctx, "rewrap", err)
	}
	return n, last, nil
}
