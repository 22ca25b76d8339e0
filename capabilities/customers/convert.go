package customers

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	customersv1 "plinth.dev/plinth/sdk/go/gen/plinth/customers/v1"
)

// The contract's enum values and the domain's states are in the same order;
// these functions keep that assumption in one place.

func stateToProto(s State) customersv1.CustomerState {
	return customersv1.CustomerState(s)
}

func stateFromProto(s customersv1.CustomerState) State {
	return State(s)
}

func customerToProto(c Customer) *customersv1.Customer {
	return &customersv1.Customer{
		Id:          c.ID,
		State:       stateToProto(c.State),
		StateReason: c.StateReason,
		Name:        c.Profile.Name,
		Email:       c.Email,
		Phone:       c.Profile.Phone,
		DateOfBirth: c.Profile.DateOfBirth,
		Address:     addressToProto(c.Profile.Address),
		TaxId:       c.Profile.TaxID,
		CreatedAt:   timestamppb.New(c.CreatedAt),
		UpdatedAt:   timestamppb.New(c.UpdatedAt),
	}
}

func addressToProto(a *Address) *customersv1.Address {
	if a == nil {
		return nil
	}
	return &customersv1.Address{
		Line1:       a.Line1,
		Line2:       a.Line2,
		City:        a.City,
		Region:      a.Region,
		PostalCode:  a.PostalCode,
		CountryCode: a.CountryCode,
	}
}

func addressFromProto(a *customersv1.Address) *Address {
	if a == nil {
		return nil
	}
	return &Address{
		Line1:       a.GetLine1(),
		Line2:       a.GetLine2(),
		City:        a.GetCity(),
		Region:      a.GetRegion(),
		PostalCode:  a.GetPostalCode(),
		CountryCode: a.GetCountryCode(),
	}
}
