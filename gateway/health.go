package gateway

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

// healthChecker answers grpc.health.v1: the empty service name is the whole
// gateway; a domain's service name is that domain's backend. Serving means
// what /readyz means: the backends are reachable.
type healthChecker struct {
	server *Server
}

func (h *healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if h.server.shuttingDown.Load() {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	domain := ""
	if req.Service != "" {
		for _, d := range h.server.domains {
			if string(d.domain.Service.FullName()) == req.Service {
				domain = d.domain.Name
			}
		}
		if domain == "" {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
		}
	}
	if len(h.server.readiness(ctx, domain)) > 0 {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

var _ grpchealth.Checker = (*healthChecker)(nil)
