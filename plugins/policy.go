package plugins

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-voice/baton/p2p/handoff"
	"github.com/baton-voice/baton/plugins/internal/pb/policyv1"
	"github.com/baton-voice/baton/plugins/internal/protocol"
)

// FailMode is what a policy plugin client answers when the plugin cannot:
// it died, hangs past the call deadline, or returned an error.
type FailMode int

// Fail modes. The zero value (Unknown) means the default, FailDeny.
const (
	FailUnknown FailMode = iota
	// FailDeny refuses the request (the default: a broken policy must not
	// open calls to pulls it would have refused).
	FailDeny
	// FailAllow allows the request.
	FailAllow
	// FailSameUser decides with the built-in handoff.SameUser policy.
	FailSameUser
)

func (m FailMode) String() string {
	switch m {
	case FailDeny:
		return "deny"
	case FailAllow:
		return "allow"
	case FailSameUser:
		return "same-user"
	}
	return "unknown"
}

// ParseFailMode parses "deny", "allow" or "same-user"; "" is FailDeny.
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "", "deny":
		return FailDeny, nil
	case "allow":
		return FailAllow, nil
	case "same-user":
		return FailSameUser, nil
	}
	return FailUnknown, fmt.Errorf("plugins: %w: fail mode %q: want deny, allow or same-user", ErrConfig, s)
}

// PolicyConfig is a transfer policy plugin.
type PolicyConfig struct {
	Config
	// CallTimeout is the deadline of one Decide (default 200 ms).
	CallTimeout time.Duration
	// FailMode applies when the plugin cannot answer within CallTimeout.
	FailMode FailMode
}

// DefaultCallTimeout is the default deadline of one policy Decide.
const DefaultCallTimeout = 200 * time.Millisecond

// PolicyClient is a handoff.Policy served by a supervised plugin process.
type PolicyClient struct {
	sup      *Supervisor
	timeout  time.Duration
	failMode FailMode
}

var _ handoff.Policy = (*PolicyClient)(nil)

// LoadPolicy starts the policy plugin cfg describes and returns it as a
// handoff.Policy (for endpoint.Config.Policy) and the io.Closer that stops
// it. The first start must succeed; afterwards the plugin is restarted
// when it dies and cfg.FailMode answers while it is down.
func LoadPolicy(ctx context.Context, cfg PolicyConfig) (handoff.Policy, io.Closer, error) {
	c, err := NewPolicyClient(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, c, nil
}

// NewPolicyClient is LoadPolicy returning the concrete client.
func NewPolicyClient(ctx context.Context, cfg PolicyConfig) (*PolicyClient, error) {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.FailMode == FailUnknown {
		cfg.FailMode = FailDeny
	}
	sup, err := Supervise(ctx, cfg.Config, KindPolicy)
	if err != nil {
		return nil, err
	}
	return &PolicyClient{sup: sup, timeout: cfg.CallTimeout, failMode: cfg.FailMode}, nil
}

// Supervisor returns the client's supervisor (stats, pid).
func (c *PolicyClient) Supervisor() *Supervisor { return c.sup }

// Decide implements handoff.Policy. It never returns an error: a plugin
// that cannot answer within the call deadline gets the fail mode, and the
// Decision's Reason says so (the endpoint logs it).
func (c *PolicyClient) Decide(ctx context.Context, req handoff.Request) (handoff.Decision, error) {
	inst, err := c.sup.current()
	if err != nil {
		return c.fail(ctx, req, err), nil
	}
	ctx2, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := policyv1.NewPolicyClient(inst.conn).Decide(ctx2, protocol.RequestToPB(req))
	if err != nil {
		if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
			c.sup.Check()
		}
		return c.fail(ctx, req, err), nil
	}
	return handoff.Decision{Allow: r.GetAllow(), Reason: r.GetReason()}, nil
}

func (c *PolicyClient) fail(ctx context.Context, req handoff.Request, cause error) handoff.Decision {
	c.sup.log.Warn("policy plugin failed; applying fail mode", "fail_mode", c.failMode, "kind", req.Kind,
		"requester", req.Requester, "owner", req.Owner, "error", cause)
	why := "policy plugin " + c.sup.cfg.Name + " unavailable (" + shortErr(cause) + "); fail mode " + c.failMode.String()
	switch c.failMode {
	case FailAllow:
		return handoff.Decision{Allow: true, Reason: why}
	case FailSameUser:
		d, _ := handoff.SameUser{}.Decide(ctx, req)
		d.Reason = why + ": " + d.Reason
		return d
	}
	return handoff.Decision{Allow: false, Reason: why}
}

func shortErr(err error) string {
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return strings.ToLower(s.Code().String()) + ": " + s.Message()
	}
	return err.Error()
}

// Close stops the plugin. It is idempotent.
func (c *PolicyClient) Close() error { return c.sup.Close() }
