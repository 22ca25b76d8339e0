package access

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	accessv1 "plinth.dev/plinth/sdk/go/gen/plinth/access/v1"
)

// The contract's enum values and the domain's key states are in the same
// order; these functions keep that assumption in one place.

func keyStateToProto(s KeyState) accessv1.ApiKeyState {
	return accessv1.ApiKeyState(s)
}

func principalToProto(p Principal) *accessv1.Principal {
	return &accessv1.Principal{
		Id:          p.ID,
		Name:        p.Name,
		Description: p.Description,
		Roles:       append([]string(nil), p.Roles...),
		CreatedAt:   timestamppb.New(p.CreatedAt),
	}
}

// keyToProto describes k as of now. It has no place for the secret or its
// hash: what leaves the service about a key is only this.
func keyToProto(k APIKey, now time.Time) *accessv1.ApiKey {
	return &accessv1.ApiKey{
		Id:          k.ID,
		PrincipalId: k.PrincipalID,
		Prefix:      k.Prefix,
		Description: k.Description,
		State:       keyStateToProto(k.StateAt(now)),
		CreatedAt:   timestamppb.New(k.CreatedAt),
		ExpiresAt:   optionalTimestamp(k.ExpiresAt),
		RevokedAt:   optionalTimestamp(k.RevokedAt),
		LastUsedAt:  optionalTimestamp(k.LastUsedAt),
	}
}

// optionalTimestamp returns nil for the zero time: absent in the contract.
func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
