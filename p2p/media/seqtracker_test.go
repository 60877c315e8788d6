package media

import "testing"

func TestSeqTracker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		first    uint16
		seqs     []uint16
		verdicts []seqVerdict
		lost     uint64
	}{
		{
			name: "in order", first: 100,
			seqs:     []uint16{101, 102, 103},
			verdicts: []seqVerdict{seqInOrder, seqInOrder, seqInOrder},
		},
		{
			name: "gap counts as lost", first: 100,
			seqs:     []uint16{103},
			verdicts: []seqVerdict{seqInOrder},
			lost:     2,
		},
		{
			name: "late arrival fills the gap", first: 100,
			seqs:     []uint16{103, 101, 102},
			verdicts: []seqVerdict{seqInOrder, seqReordered, seqReordered},
		},
		{
			name: "duplicates", first: 100,
			seqs:     []uint16{100, 101, 101, 100},
			verdicts: []seqVerdict{seqDuplicate, seqInOrder, seqDuplicate, seqDuplicate},
		},
		{
			name: "wrap-around", first: 65534,
			seqs:     []uint16{65535, 0, 1},
			verdicts: []seqVerdict{seqInOrder, seqInOrder, seqInOrder},
		},
		{
			name: "reordered across the wrap", first: 65535,
			seqs:     []uint16{1, 0},
			verdicts: []seqVerdict{seqInOrder, seqReordered},
		},
		{
			name: "reordered before the first packet", first: 100,
			seqs:     []uint16{99, 101},
			verdicts: []seqVerdict{seqReordered, seqInOrder},
		},
		{
			name: "unconfirmed jump is ignored", first: 100,
			seqs:     []uint16{30000, 101},
			verdicts: []seqVerdict{seqJump, seqInOrder},
		},
		{
			name: "confirmed jump restarts and keeps earlier loss", first: 100,
			seqs:     []uint16{102, 30000, 30001, 30003},
			verdicts: []seqVerdict{seqInOrder, seqJump, seqRestarted, seqInOrder},
			lost:     2,
		},
		{
			name: "older than the duplicate window still counts once", first: 100,
			seqs:     []uint16{180, 110},
			verdicts: []seqVerdict{seqInOrder, seqReordered},
			lost:     78,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newSeqTracker(tt.first)
			for i, s := range tt.seqs {
				if got := st.update(s); got != tt.verdicts[i] {
					t.Fatalf("update(%d) = %v, want %v", s, got, tt.verdicts[i])
				}
			}
			if got := st.lost(); got != tt.lost {
				t.Fatalf("lost = %d, want %d", got, tt.lost)
			}
		})
	}
}
