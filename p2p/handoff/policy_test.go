package handoff

import (
	"context"
	"testing"
)

func TestSameUser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		requester string
		owner     string
		allow     bool
	}{
		{"same user, other device", "alice/laptop", "alice/desk", true},
		{"another user", "mallory/laptop", "alice/desk", false},
		{"prefix is not the same user", "alice2/laptop", "alice/desk", false},
		{"empty requester", "", "alice/desk", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, k := range []Kind{KindQuery, KindPull} {
				d, err := SameUser{}.Decide(context.Background(), Request{Kind: k, Requester: tt.requester, Owner: tt.owner})
				if err != nil || d.Allow != tt.allow || d.Reason == "" {
					t.Errorf("%s: got %+v, %v; want allow=%v with a reason", k, d, err, tt.allow)
				}
			}
		})
	}
}

// The default allows a transfer whoever the parties are: the endpoint and
// the gateway have checked the requester is a party of the call.
func TestSameUserAllowsTransfers(t *testing.T) {
	t.Parallel()
	for _, r := range []Request{
		{Kind: KindTransfer, Requester: "alice/laptop", Owner: "bob/mobile", CallID: "c-1", Peer: "carol"},
		{Kind: KindTransfer, Requester: "alice/desk", Owner: "alice/desk", CallID: "c-1", Peer: "pstn/trunk"},
	} {
		if d, err := (SameUser{}).Decide(context.Background(), r); err != nil || !d.Allow || d.Reason == "" {
			t.Errorf("%+v: %+v, %v; want allowed with a reason", r, d, err)
		}
	}
	if KindTransfer.String() != "transfer" {
		t.Errorf("KindTransfer is %q", KindTransfer)
	}
}
