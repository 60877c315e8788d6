package simphone

import (
	"fmt"
	"time"

	"github.com/baton-voice/baton/p2p/audio"
)

// Packet is one RTP packet the phone received, as its arrival log keeps
// it; its decoded audio is Samples samples of the call's PCM from Offset.
type Packet struct {
	At      time.Time
	SSRC    uint32
	Seq     uint16
	TS      uint32
	Offset  int
	Samples int
}

// Report is what the phone heard in a window of a call: the RTP stream's
// continuity and the tone of each second.
type Report struct {
	From, To time.Time
	Packets  int
	// SSRCs is the number of distinct SSRCs; a far side that does not
	// notice a move keeps one.
	SSRCs int
	// Lost counts the sequence numbers skipped within one SSRC.
	Lost int
	// TSJumps counts timestamp steps other than 160 per sequence number.
	TSJumps int
	// LongestGap is the longest time between two packets (and from the
	// window's start to the first one and from the last one to its end).
	LongestGap time.Duration
	// Tones is the dominant candidate tone of each second of the window
	// (0: silent, or no packet that second).
	Tones []float64
}

// String is one line for the demo's report.
func (r Report) String() string {
	return fmt.Sprintf("%d packets, %d lost, %d SSRC(s), %d timestamp jumps, longest gap %.0f ms, tones per second %v",
		r.Packets, r.Lost, r.SSRCs, r.TSJumps, float64(r.LongestGap)/float64(time.Millisecond), r.Tones)
}

// Received returns the call's arrival log.
func (c *Call) Received() []Packet {
	c.media.mu.Lock()
	defer c.media.mu.Unlock()
	return append([]Packet(nil), c.media.log...)
}

// Report summarises the packets that arrived from from up to to; the
// tones are chosen among candidates.
func (c *Call) Report(from, to time.Time, candidates []float64) Report {
	c.media.mu.Lock()
	var pkts []Packet
	for _, p := range c.media.log {
		if !p.At.Before(from) && !p.At.After(to) {
			pkts = append(pkts, p)
		}
	}
	pcm := c.media.pcm
	c.media.mu.Unlock()
	return report(from, to, pkts, pcm, candidates)
}

func report(from, to time.Time, pkts []Packet, pcm []int16, candidates []float64) Report {
	r := Report{From: from, To: to, Packets: len(pkts)}
	seen := map[uint32]bool{}
	last := from
	for i, p := range pkts {
		seen[p.SSRC] = true
		if g := p.At.Sub(last); g > r.LongestGap {
			r.LongestGap = g
		}
		last = p.At
		if i == 0 {
			continue
		}
		prev := pkts[i-1]
		if p.SSRC != prev.SSRC {
			continue
		}
		d := p.Seq - prev.Seq
		if d > 1 && d < 1000 {
			r.Lost += int(d - 1)
		}
		if p.TS-prev.TS != uint32(d)*160 {
			r.TSJumps++
		}
	}
	if g := to.Sub(last); g > r.LongestGap && len(pkts) > 0 {
		r.LongestGap = g
	}
	if len(pkts) == 0 {
		r.LongestGap = to.Sub(from)
	}
	r.SSRCs = len(seen)
	secs := int((to.Sub(from) + time.Second - 1) / time.Second)
	for s := 0; s < secs; s++ {
		lo, hi := from.Add(time.Duration(s)*time.Second), from.Add(time.Duration(s+1)*time.Second)
		var buf []int16
		for _, p := range pkts {
			if !p.At.Before(lo) && p.At.Before(hi) && p.Offset+p.Samples <= len(pcm) {
				buf = append(buf, pcm[p.Offset:p.Offset+p.Samples]...)
			}
		}
		r.Tones = append(r.Tones, dominantTone(buf, candidates))
	}
	return r
}

// dominantTone is the candidate that sounds longest in pcm, 0 if none.
func dominantTone(pcm []int16, candidates []float64) float64 {
	dur := map[float64]time.Duration{}
	best := 0.0
	for _, s := range audio.Segments(pcm, 8000, 0, candidates) {
		if s.Silent() {
			continue
		}
		dur[s.Hz] += s.Duration()
		if best == 0 || dur[s.Hz] > dur[best] {
			best = s.Hz
		}
	}
	return best
}
