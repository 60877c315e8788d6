package sipbridge

import (
	"testing"
	"time"
)

func TestFailLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	l := &FailLimiter{Burst: 3, Every: 10 * time.Second, Now: func() time.Time { return now }}
	for i := range 3 {
		if !l.Allowed("192.0.2.1") {
			t.Fatalf("attempt %d refused within burst", i)
		}
		l.Failed("192.0.2.1")
	}
	if l.Allowed("192.0.2.1") {
		t.Fatal("allowed after burst of failures")
	}
	if !l.Allowed("192.0.2.2") {
		t.Fatal("another source refused")
	}
	now = now.Add(5 * time.Second)
	if l.Allowed("192.0.2.1") {
		t.Fatal("allowed before a token refilled")
	}
	now = now.Add(5 * time.Second)
	if !l.Allowed("192.0.2.1") {
		t.Fatal("refused after a token refilled")
	}
}
