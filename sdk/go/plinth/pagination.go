package plinth

import (
	"context"
	"fmt"
	"iter"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	resourcesv1 "plinth.dev/plinth/sdk/go/gen/plinth/resources/v1"
)

// Paginate returns an iterator over every item of a paged list. fetch
// reads one page: given a page token ("" for the first page), it returns
// the page's items and the token of the next page ("" after the last).
// Pages are fetched one at a time as the loop reaches them, so breaking
// out of the loop fetches no more. If fetching a page fails, the iterator
// yields the error (with a zero item) once and stops.
//
// Each of the Client's All... methods is Paginate over a List
// capability; Paginate is for anything else that pages the same way.
// Ranging over the iterator again starts again from the first page.
func Paginate[Item any](ctx context.Context, fetch func(ctx context.Context, pageToken string) (items []Item, nextPageToken string, err error)) iter.Seq2[Item, error] {
	return paginate(ctx, "", fetch)
}

// paginate is Paginate starting at the page of token first.
func paginate[Item any](ctx context.Context, first string, fetch func(ctx context.Context, pageToken string) ([]Item, string, error)) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var zero Item
		token := first
		for {
			items, next, err := fetch(ctx, token)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == token {
				yield(zero, fmt.Errorf("plinth: the page after page token %q has the same token; stopping rather than loop forever", token))
				return
			}
			token = next
		}
	}
}

// AllCustomers returns an iterator over every customer that ListCustomers
// returns for req's filter: page after page of req.PageSize customers (0
// for the server's default), from req.PageToken on ("" for the first
// page). req may be nil, for every customer; it is not modified. See
// Paginate.
//
//	for customer, err := range client.Customers.AllCustomers(ctx, nil) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(customer.GetId())
//	}
func (c CustomersClient) AllCustomers(ctx context.Context, req *customersv1.ListCustomersRequest) iter.Seq2[*customersv1.Customer, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*customersv1.Customer, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListCustomers(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetCustomers(), res.Msg.GetNextPageToken(), nil
	})
}

// AllLedgerAccounts returns an iterator over every account that
// ListLedgerAccounts returns for req's filter (all, or one customer's),
// page after page, as AllCustomers does.
func (c LedgerClient) AllLedgerAccounts(ctx context.Context, req *ledgerv1.ListLedgerAccountsRequest) iter.Seq2[*ledgerv1.LedgerAccount, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*ledgerv1.LedgerAccount, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListLedgerAccounts(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetAccounts(), res.Msg.GetNextPageToken(), nil
	})
}

// AllTransfers returns an iterator over every transfer that ListTransfers
// returns for req's filter (all, or those touching one account), page
// after page, as AllCustomers does.
func (c LedgerClient) AllTransfers(ctx context.Context, req *ledgerv1.ListTransfersRequest) iter.Seq2[*ledgerv1.Transfer, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*ledgerv1.Transfer, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListTransfers(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetTransfers(), res.Msg.GetNextPageToken(), nil
	})
}

// AllAccountEntries returns an iterator over every entry of the account
// req names, oldest first, page after page, as AllCustomers does.
func (c LedgerClient) AllAccountEntries(ctx context.Context, req *ledgerv1.ListAccountEntriesRequest) iter.Seq2[*ledgerv1.Entry, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*ledgerv1.Entry, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListAccountEntries(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetEntries(), res.Msg.GetNextPageToken(), nil
	})
}

// AllPrincipals returns an iterator over every principal, page after
// page, as AllCustomers does. req may be nil.
func (c AccessClient) AllPrincipals(ctx context.Context, req *accessv1.ListPrincipalsRequest) iter.Seq2[*accessv1.Principal, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*accessv1.Principal, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListPrincipals(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetPrincipals(), res.Msg.GetNextPageToken(), nil
	})
}

// AllApiKeys returns an iterator over every API key of the principal req
// names, of every state, page after page, as AllCustomers does. It never
// yields a key's secret.
func (c AccessClient) AllApiKeys(ctx context.Context, req *accessv1.ListApiKeysRequest) iter.Seq2[*accessv1.ApiKey, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*accessv1.ApiKey, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListApiKeys(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetApiKeys(), res.Msg.GetNextPageToken(), nil
	})
}

// AllAuditRecords returns an iterator over every audit record that
// ListAuditRecords returns for req's filters (one principal, one
// capability), oldest first, page after page, as AllCustomers does.
func (c AuditClient) AllAuditRecords(ctx context.Context, req *auditv1.ListAuditRecordsRequest) iter.Seq2[*auditv1.AuditRecord, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*auditv1.AuditRecord, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListAuditRecords(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetAuditRecords(), res.Msg.GetNextPageToken(), nil
	})
}

// AllCustomerResources returns an iterator over everything the customer
// req names owns, across every domain (the customer record itself, then
// their ledger accounts, by id), page after page, as AllCustomers does.
//
//	for r, err := range client.Resources.AllCustomerResources(ctx, &resourcesv1.ListCustomerResourcesRequest{CustomerId: id}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(r.GetDomain(), r.GetType(), r.GetId(), r.GetState())
//	}
func (c ResourcesClient) AllCustomerResources(ctx context.Context, req *resourcesv1.ListCustomerResourcesRequest) iter.Seq2[*resourcesv1.Resource, error] {
	req = cloneOrNew(req)
	return paginate(ctx, req.GetPageToken(), func(ctx context.Context, token string) ([]*resourcesv1.Resource, string, error) {
		page := proto.CloneOf(req)
		page.PageToken = token
		res, err := c.ListCustomerResources(ctx, connect.NewRequest(page))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetResources(), res.Msg.GetNextPageToken(), nil
	})
}

// cloneOrNew returns a copy of req, or a new empty request if req is nil,
// so that the caller's request is never changed, even after the call.
func cloneOrNew[M interface {
	proto.Message
	*T
}, T any](req M) M {
	if req == nil {
		return M(new(T))
	}
	return proto.CloneOf(req)
}
