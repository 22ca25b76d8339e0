package sensitive_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"plinth.dev/plinth/internal/sensitive"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

func ada() *customersv1.ListCustomersResponse {
	return &customersv1.ListCustomersResponse{Customers: []*customersv1.Customer{{
		Id: "cus_1", Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+14155550100",
		DateOfBirth: "1815-12-10", TaxId: "123-45-6789",
		Address: &customersv1.Address{Line1: "12 St James's Square", City: "London", CountryCode: "GB"},
	}}}
}

func TestMaskFitsEachField(t *testing.T) {
	msg := ada()
	out, revealed := sensitive.Mask(msg, func(optionsv1.Sensitivity) bool { return false })
	c := out.(*customersv1.ListCustomersResponse).GetCustomers()[0]
	for field, got := range map[string]string{
		"name": c.GetName(), "email": c.GetEmail(), "phone": c.GetPhone(), "date_of_birth": c.GetDateOfBirth(),
		"tax_id": c.GetTaxId(), "address.line1": c.GetAddress().GetLine1(), "address.city": c.GetAddress().GetCity(),
	} {
		want := map[string]string{"email": "***@example.com", "tax_id": "****6789", "phone": "****0100"}[field]
		if want == "" {
			want = "****"
		}
		if got != want {
			t.Errorf("%s masked as %q, want %q", field, got, want)
		}
	}
	if c.GetId() != "cus_1" || len(revealed) != 0 {
		t.Errorf("id %q, revealed %v: want the id kept and nothing revealed", c.GetId(), revealed)
	}
	if !proto.Equal(msg, ada()) {
		t.Error("Mask changed its argument")
	}
}

func TestMaskRevealsWhatTheCallerMay(t *testing.T) {
	msg := ada()
	out, revealed := sensitive.Mask(msg, func(c optionsv1.Sensitivity) bool { return c == optionsv1.Sensitivity_SENSITIVITY_PII })
	if !proto.Equal(out, msg) {
		t.Errorf("a caller who may reveal PII got %v", out)
	}
	if !slices.Equal(revealed, []optionsv1.Sensitivity{optionsv1.Sensitivity_SENSITIVITY_PII}) {
		t.Errorf("revealed %v, want PII", revealed)
	}
	// Nothing sensitive set: nothing revealed.
	_, revealed = sensitive.Mask(&customersv1.ListCustomersResponse{}, func(optionsv1.Sensitivity) bool { return true })
	if len(revealed) != 0 {
		t.Errorf("an empty answer revealed %v", revealed)
	}
}
