package gateway

import "testing"

func TestPipe(t *testing.T) {
	t.Parallel()
	p := newPipe(8000) // 200 ms: 1600 samples
	out := make([]int16, 160)
	out[0] = 7
	_ = p.ReadFrame(out)
	if out[0] != 0 {
		t.Fatal("an empty pipe did not play silence")
	}
	frame := func(v int16) []int16 {
		f := make([]int16, 160)
		for i := range f {
			f[i] = v
		}
		return f
	}
	for v := int16(1); v <= 12; v++ { // 1920 samples: the first two frames are dropped
		_ = p.WriteFrame(frame(v))
	}
	_ = p.ReadFrame(out)
	if out[0] != 3 || out[159] != 3 {
		t.Fatalf("after overflow the pipe played %d, want frame 3 (oldest kept)", out[0])
	}
	for v := int16(4); v <= 12; v++ {
		_ = p.ReadFrame(out)
		if out[0] != v {
			t.Fatalf("played %d, want %d", out[0], v)
		}
	}
	_ = p.ReadFrame(out)
	if out[0] != 0 {
		t.Fatal("a drained pipe did not play silence")
	}
}
