// Package plinth is the Go SDK of Plinth, the platform of fintech
// capabilities: customers, a double-entry ledger, access, audit, and
// resources (what a customer owns, across every domain).
//
// New makes a Client from the gateway's base URL and an API key:
//
//	client, err := plinth.New("https://plinth.example.com", os.Getenv("PLINTH_API_KEY"))
//	if err != nil {
//		return err
//	}
//	res, err := client.Customers.SignUpCustomer(ctx, connect.NewRequest(&customersv1.SignUpCustomerRequest{
//		Name:  "Ada Lovelace",
//		Email: "ada@example.com",
//	}))
//
// The Client has one field per domain (Customers, Ledger, Access, Audit,
// Resources), each the domain's generated Connect client with, for each
// List capability, a method that iterates over every item of every page
// (AllCustomers, AllTransfers, AllCustomerResources, ...; see Paginate).
//
// Every call carries the API key. Every call of a capability that changes
// state gets an Idempotency-Key made for it, unless the request has one
// already, and keeps it across its retries, so the gateway applies it once
// however often it is sent. A call that failed in a way a retry may cure
// (the gateway was unavailable, or the same key is still being served) is
// retried with exponential backoff and jitter; see RetryPolicy. A call
// that was refused (an invalid request, insufficient funds, a missing
// permission) is never retried.
//
// Errors are *connect.Error values; FieldViolations, Reason, Info,
// AvailableBalance and AsInsufficientFunds read the details the gateway
// puts in them, and IsRetryable says whether sending the same call again
// may succeed.
//
// For those who build the generated clients themselves, WithAPIKey and
// WithIdempotencyKeys are the same authentication and idempotency keys as
// connect.ClientOption values, without the retries.
package plinth
