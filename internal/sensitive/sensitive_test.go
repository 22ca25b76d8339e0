package sensitive_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"plinth.dev/plinth/internal/sensitive"
	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
	ledgerv1 "plinth.dev/plinth/sdk/go/gen/plinth/ledger/v1"
	optionsv1 "plinth.dev/plinth/sdk/go/gen/plinth/options/v1"
)

func TestRedactRemovesEverySensitiveValue(t *testing.T) {
	secrets := []string{"Ada Lovelace", "ada@example.com", "+14155550100", "1815-12-10", "12 St James's Sq", "London", "123-45-6789"}
	msg := &customersv1.ListCustomersResponse{Customers: []*customersv1.Customer{{
		Id:          "cus_01JD5Q0000000000000000000",
		State:       customersv1.CustomerState_CUSTOMER_STATE_PENDING,
		Name:        secrets[0],
		Email:       secrets[1],
		Phone:       secrets[2],
		DateOfBirth: secrets[3],
		Address:     &customersv1.Address{Line1: secrets[4], City: secrets[5], CountryCode: "GB"},
		TaxId:       secrets[6],
	}}}
	original := proto.Clone(msg)

	out, err := protojson.Marshal(sensitive.Redact(msg))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("redacted message still holds a sensitive value: %s", out)
		}
	}
	if !strings.Contains(string(out), "cus_01JD5Q0000000000000000000") || !strings.Contains(string(out), `"[PII]"`) {
		t.Errorf("redacted message lost its non-sensitive fields or placeholders: %s", out)
	}
	if !proto.Equal(msg, original) {
		t.Error("Redact changed its argument")
	}
}

func TestClearSecretsRemovesCredentialsOnly(t *testing.T) {
	msg := &accessv1.IssueApiKeyResponse{ApiKey: &accessv1.ApiKey{Id: "key_1", Prefix: "abcd1234"}, Secret: "plk_abcd1234_s3cr3t"}
	out := sensitive.ClearSecrets(msg).(*accessv1.IssueApiKeyResponse)
	if out.GetSecret() != "" || out.GetApiKey().GetPrefix() != "abcd1234" || msg.GetSecret() == "" {
		t.Errorf("ClearSecrets = %v (original %v); want the secret gone from the copy only", out, msg)
	}
	b, _ := protojson.Marshal(sensitive.Redact(msg))
	if strings.Contains(string(b), "s3cr3t") || !strings.Contains(string(b), "[SECRET]") {
		t.Errorf("Redact = %s, want the secret replaced", b)
	}
}

func TestStrictestClass(t *testing.T) {
	if got := sensitive.StrictestClass((&customersv1.GetCustomerResponse{}).ProtoReflect().Descriptor()); got != optionsv1.Sensitivity_SENSITIVITY_PII {
		t.Errorf("GetCustomerResponse: %v, want PII (through Customer)", got)
	}
	if got := sensitive.StrictestClass((&customersv1.ListCustomersRequest{}).ProtoReflect().Descriptor()); got != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
		t.Errorf("ListCustomersRequest: %v, want none", got)
	}
	if got := sensitive.StrictestClass((&accessv1.IssueApiKeyResponse{}).ProtoReflect().Descriptor()); got != optionsv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
		t.Errorf("IssueApiKeyResponse: %v, want none: a secret is not stored", got)
	}
}

// TestMayHold: a message type may hold a classified field when it has one,
// or a message field, list or map whose type may.
func TestMayHold(t *testing.T) {
	for _, tc := range []struct {
		msg  proto.Message
		want bool
	}{
		{&customersv1.Customer{}, true},                // email, tax_id... directly
		{&customersv1.GetCustomerResponse{}, true},     // through a message field
		{&customersv1.ListCustomersResponse{}, true},   // through a list
		{&accessv1.IssueApiKeyResponse{}, true},        // a SECRET
		{&ledgerv1.MoveMoneyResponse{}, false},         // nothing classified at any depth
		{&customersv1.ApproveCustomerRequest{}, false}, // ids and nothing else
	} {
		if got := sensitive.MayHold(tc.msg.ProtoReflect().Descriptor()); got != tc.want {
			t.Errorf("MayHold(%s) = %v, want %v", tc.msg.ProtoReflect().Descriptor().FullName(), got, tc.want)
		}
	}
}
