package ledger

import (
	"context"
	"time"

	"plinth.dev/plinth/capabilities/registry"
)

// Resources returns the ledger's registry.ResourceSource over store: every
// account opened with a customer's id is a resource of type
// "ledger_account" that the customer owns, with its state, currency and
// balance policy; never its description (free text) nor its balances.
// GetResource finds the platform's own accounts too, owned by no customer.
func Resources(store Store) registry.ResourceSource {
	return resourceSource{store: store, now: time.Now}
}

type resourceSource struct {
	store Store
	now   func() time.Time
}

// Prefixes returns the prefix of ledger account ids.
func (resourceSource) Prefixes() []string { return []string{"lac"} }

// CustomerResources returns a page of the customer's accounts, by id.
func (r resourceSource) CustomerResources(ctx context.Context, q registry.ResourceQuery) ([]registry.Resource, error) {
	if q.Limit < 1 || q.CustomerID == "" {
		// An empty CustomerID would list every account of the ledger.
		return nil, nil
	}
	found, err := r.store.ListAccounts(ctx, AccountQuery{AfterID: q.AfterID, CustomerID: q.CustomerID, Limit: q.Limit}, r.now())
	if err != nil {
		return nil, err
	}
	out := make([]registry.Resource, len(found))
	for i, a := range found {
		out[i] = accountResource(a.Account)
	}
	return out, nil
}

// Resource returns the account with id as a resource.
func (r resourceSource) Resource(ctx context.Context, id string) (registry.Resource, error) {
	a, _, err := r.store.GetAccount(ctx, id, r.now())
	if err != nil {
		return registry.Resource{}, err
	}
	return accountResource(a), nil
}

// accountResource is a as a resource.
func accountResource(a Account) registry.Resource {
	return registry.Resource{
		ID:         a.ID,
		Domain:     "ledger",
		Type:       "ledger_account",
		State:      accountStateToProto(a.State).String(),
		CustomerID: a.CustomerID,
		CreatedAt:  a.CreatedAt,
		Attributes: map[string]string{
			"currency":       a.Currency,
			"balance_policy": policyToProto(a.Policy).String(),
		},
	}
}
