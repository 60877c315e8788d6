package sipbridge

import (
	"fmt"
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

// Sources whose buckets have refilled are forgotten, so failures from many
// addresses do not grow the table forever.
func TestFailLimiterForgetsRefilledSources(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	l := &FailLimiter{Burst: 3, Every: time.Second, Now: func() time.Time { return now }}
	for i := range 2000 {
		l.Failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	now = now.Add(10 * time.Second)
	l.Failed("192.0.2.1")
	for i := range 2000 {
		l.Failed(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	if n := len(l.buckets); n > 2100 {
		t.Fatalf("%d buckets kept, want the refilled ones forgotten", n)
	}
	if !l.Allowed("10.0.0.1") {
		t.Fatal("a forgotten source is not allowed again")
	}
}
