package sipbridge

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestBindings(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	var events []string
	b := &Bindings{Now: func() time.Time { return now }, OnChange: func(aor string, on bool) {
		events = append(events, fmt.Sprintf("%s %v", aor, on))
	}}
	b.Set("alice", "sip:a@192.0.2.1", time.Minute)
	b.Set("alice", "sip:a@192.0.2.2", 2*time.Minute)
	if got := b.Contacts("alice"); len(got) != 2 {
		t.Fatalf("contacts = %v, want 2", got)
	}
	b.Set("alice", "sip:a@192.0.2.1", 0)
	now = now.Add(90 * time.Second)
	b.Expire()
	if got := b.Contacts("alice"); len(got) != 1 {
		t.Fatalf("contacts after un-register of one = %v", got)
	}
	now = now.Add(time.Minute)
	b.Expire()
	if got := b.Contacts("alice"); len(got) != 0 {
		t.Fatalf("contacts after expiry = %v", got)
	}
	b.Set("bob", "sip:b@192.0.2.3", time.Minute)
	b.RemoveAll("bob")
	want := []string{"alice true", "alice false", "bob true", "bob false"}
	if !slices.Equal(events, want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
}
