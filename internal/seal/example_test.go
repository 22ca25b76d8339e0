package seal_test

import (
	"context"
	"errors"
	"fmt"

	"plinth.dev/plinth/internal/keyring"
	"plinth.dev/plinth/internal/seal"
)

func Example() {
	ctx := context.Background()
	kr, err := keyring.NewLocal("") // NOT FOR PRODUCTION: keys in memory
	if err != nil {
		panic(err)
	}
	sealer := seal.New(kr)

	// Seal a customer's email for its column and row...
	place := seal.Place{Table: "customers", Column: "email", Row: "cus_1"}
	sealed, err := sealer.Seal(ctx, keyring.PII, place, []byte("ada@example.com"))
	if err != nil {
		panic(err)
	}
	// ...and index it, so that the customer can be found by email.
	index, err := sealer.BlindIndex(ctx, "customers.email", []byte("ada@example.com"))
	if err != nil {
		panic(err)
	}
	fmt.Println("index bytes:", len(index))

	email, err := sealer.Open(ctx, keyring.PII, place, sealed)
	if err != nil {
		panic(err)
	}
	fmt.Println("opened:", string(email))

	// Copied to another row, it does not open.
	elsewhere := seal.Place{Table: "customers", Column: "email", Row: "cus_2"}
	_, err = sealer.Open(ctx, keyring.PII, elsewhere, sealed)
	fmt.Println("elsewhere:", errors.Is(err, seal.ErrCannotOpen))
	// Output:
	// index bytes: 32
	// opened: ada@example.com
	// elsewhere: true
}
