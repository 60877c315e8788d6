package protocol

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/plugins/internal/pb/policyv1"
)

// PolicyServer serves policyv1 from a handoff.Policy.
type PolicyServer struct {
	policyv1.UnimplementedPolicyServer
	Policy handoff.Policy
}

// Decide implements policyv1.PolicyServer. An error from the policy
// becomes codes.Internal; the host applies its fail mode to it.
func (s *PolicyServer) Decide(ctx context.Context, req *policyv1.DecideRequest) (*policyv1.DecideResponse, error) {
	d, err := s.Policy.Decide(ctx, RequestFromPB(req))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &policyv1.DecideResponse{Allow: d.Allow, Reason: d.Reason}, nil
}
