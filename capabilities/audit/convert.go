package audit

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "plinth.dev/plinth/sdk/go/gen/plinth/audit/v1"
)

func recordToProto(r Record) *auditv1.AuditRecord {
	r = r.Clone()
	return &auditv1.AuditRecord{
		Id:          r.ID,
		Sequence:    r.Sequence,
		Time:        timestamppb.New(r.Time),
		PrincipalId: r.PrincipalID,
		Capability:  r.Capability,
		Code:        r.Code,
		ResourceIds: r.ResourceIDs,
		Revealed:    r.Revealed,
		RequestId:   r.RequestID,
		PrevHash:    r.PrevHash,
		Hash:        r.Hash,
	}
}
