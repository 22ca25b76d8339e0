package gateway

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
)

// The audit records the ids a call named and returned, at any depth,
// each once, never a classified field's value, and at most
// maxAuditedResources of them.
func TestResourceIDs(t *testing.T) {
	req := &ledgerv1.MoveMoneyRequest{Currency: "USD", Legs: []*ledgerv1.Leg{
		{FromAccountId: "lac_A", ToAccountId: "lac_B", Amount: 5},
		{FromAccountId: "lac_B", ToAccountId: "lac_C", Amount: 5},
	}}
	res := &ledgerv1.MoveMoneyResponse{Transfer: &ledgerv1.Transfer{
		Id: "trf_1", Legs: req.Legs, ReversesTransferId: "trf_0", PostedAt: timestamppb.Now(),
	}}
	if got, want := resourceIDs(req, res), []string{"lac_A", "lac_B", "lac_C", "trf_1", "trf_0"}; !slices.Equal(got, want) {
		t.Errorf("MoveMoney: ids %q, want %q", got, want)
	}

	customer := &customersv1.GetCustomerResponse{Customer: &customersv1.Customer{Id: "cus_1", TaxId: "123-45-6789", CreatedAt: timestamppb.Now()}}
	if got, want := resourceIDs(&customersv1.GetCustomerRequest{CustomerId: "cus_1"}, customer), []string{"cus_1"}; !slices.Equal(got, want) {
		t.Errorf("GetCustomer: ids %q, want %q (tax_id is PII: never read)", got, want)
	}

	if got := resourceIDs(&ledgerv1.MoveMoneyRequest{}, nil); got != nil {
		t.Errorf("a request naming nothing: ids %q, want none", got)
	}

	many := &ledgerv1.MoveMoneyRequest{}
	for i := range 40 {
		many.Legs = append(many.Legs, &ledgerv1.Leg{FromAccountId: fmt.Sprintf("lac_%d", 2*i), ToAccountId: fmt.Sprintf("lac_%d", 2*i+1)})
	}
	if got := resourceIDs(many); len(got) != maxAuditedResources || got[maxAuditedResources-1] != fmt.Sprint("lac_", maxAuditedResources-1) {
		t.Errorf("80 ids: kept %d ending %q, want the first %d", len(got), got[len(got)-1], maxAuditedResources)
	}
}
