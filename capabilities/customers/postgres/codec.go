package postgres

import "fmt"

// place is where a sealed value is stored: its table, its column and the id
// of its row. A sealed value is bound to its place, so that one copied to
// another row or column (another customer's email column, say) fails to
// open instead of passing for that row's value.
type place struct {
	table  string // schema-qualified, e.g. "customers.customer_pii"
	column string // e.g. "email"
	row    string // the customer's id
}

func (p place) String() string { return p.table + "." + p.column + " of " + p.row }

// fieldCodec turns each PII value into what its column stores, and back.
// Every PII column of the schema goes through it, and nothing else writes
// them, so that sealing values at rest (issue 4) changes this type and
// nothing around it.
//
// A stored value starts with a format byte that says how the rest is
// encoded, so that values written before and after a change of format can
// live side by side (while a background job re-seals old rows, say):
//
//	0x00  not sealed: the plaintext follows as is (plaintextCodec)
//	0x01  reserved for issue 4: AES-256-GCM under a data key that the
//	      keyring wraps with the PII class key; the place is the additional
//	      authenticated data, so a value opens only where it was sealed
type fieldCodec interface {
	// Seal returns what to store at p for plaintext.
	Seal(p place, plaintext []byte) ([]byte, error)
	// Open returns the plaintext of what is stored at p.
	Open(p place, sealed []byte) ([]byte, error)
}

// formatPlaintext is the format byte of a value that is not sealed.
const formatPlaintext byte = 0x00

// plaintextCodec stores values unsealed, behind formatPlaintext. It is the
// only codec until issue 4 replaces it with AES-256-GCM envelope
// encryption; it protects nothing, and its place is ignored. What it does
// give now is the stored format issue 4 builds on.
type plaintextCodec struct{}

func (plaintextCodec) Seal(_ place, plaintext []byte) ([]byte, error) {
	return append([]byte{formatPlaintext}, plaintext...), nil
}

func (plaintextCodec) Open(p place, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("%s is empty, without even a format byte", p)
	}
	if sealed[0] != formatPlaintext {
		// Never print the value: it may be plaintext.
		return nil, fmt.Errorf("%s has format 0x%02x, which this version cannot open", p, sealed[0])
	}
	return sealed[1:], nil
}

var _ fieldCodec = plaintextCodec{}
