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
