package postgres

import (
	"context"
	"fmt"

	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/seal"
)

// fieldCodec turns each PII value into what its column stores, and back.
// Every PII column of the schema goes through it, and nothing else writes
// them.
//
// A stored value starts with a format byte that says how the rest is
// encoded, so that values of different formats can live side by side
// (while a job re-seals old rows, say):
//
//	0x00  not sealed: the plaintext follows as is; read, never written
//	0x01  sealed by internal/seal: AES-256-GCM under a data key that the
//	      keyring wraps with the PII class key; the place (table, column,
//	      row) is the additional authenticated data, so a value opens only
//	      where it was sealed
type fieldCodec interface {
	// Seal returns what to store at p for plaintext.
	Seal(ctx context.Context, p seal.Place, plaintext []byte) ([]byte, error)
	// Open returns the plaintext of what is stored at p.
	Open(ctx context.Context, p seal.Place, stored []byte) ([]byte, error)
}

// formatPlaintext is the format byte of a value written unsealed, before
// sealing existed.
const formatPlaintext byte = 0x00

// sealingCodec seals every value as PII.
type sealingCodec struct{ sealer *seal.Sealer }

func (c sealingCodec) Seal(ctx context.Context, p seal.Place, plaintext []byte) ([]byte, error) {
	return c.sealer.Seal(ctx, keyring.PII, p, plaintext)
}

func (c sealingCodec) Open(ctx context.Context, p seal.Place, stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, fmt.Errorf("%s is empty, without even a format byte", p)
	}
	if stored[0] == formatPlaintext {
		return stored[1:], nil
	}
	return c.sealer.Open(ctx, keyring.PII, p, stored)
}
