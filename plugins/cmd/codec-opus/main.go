// Command codec-opus is Baton's Opus codec plugin (codec protocol v1): it
// serves "opus/48000/2" (RFC 7587) with one libopus encoder and decoder
// per call, and libopus' packet-loss concealment. Build it with cgo and
// Debian's libopus-dev:
//
//	go build -o /usr/lib/baton/plugins/codec-opus ./plugins/cmd/codec-opus
//
// Flags: -rate (PCM rate, default 48000), -bitrate, -complexity, -pt.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"

	"github.com/baton-voice/baton/codecs"
	"github.com/baton-voice/baton/plugins/cmd/codec-opus/opus"
	"github.com/baton-voice/baton/plugins/sdk"
)

func main() {
	rate := flag.Int("rate", 48000, "PCM sample rate exchanged with Baton (8000, 12000, 16000, 24000, 48000)")
	bitrate := flag.Int("bitrate", 32000, "encoder bitrate in bit/s")
	complexity := flag.Int("complexity", 5, "encoder complexity 0..10")
	pt := flag.Int("pt", 111, "RTP payload type to offer (96..127)")
	flag.Parse()
	if *pt < 96 || *pt > 127 {
		fmt.Fprintf(os.Stderr, "codec-opus: -pt %d: want 96..127\n", *pt)
		os.Exit(1)
	}
	c, err := opus.New(opus.Config{SampleRate: *rate, Bitrate: *bitrate, Complexity: *complexity, PayloadType: uint8(*pt)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "codec-opus:", err)
		os.Exit(1)
	}
	sdk.ServeCodecs([]codecs.Codec{c}, sdk.Name("codec-opus"), sdk.Version("1.0.0"),
		sdk.Capabilities("opus/48000/2", opus.Version(), "plc"),
		sdk.SelfTest(func(context.Context) error { return selfTest(c) }))
}

// selfTest encodes and decodes 200 ms of a 1 kHz tone and checks that the
// tone comes back.
func selfTest(c *opus.Codec) error {
	enc, err := c.NewEncoder()
	if err != nil {
		return err
	}
	defer enc.Close()
	dec, err := c.NewDecoder()
	if err != nil {
		return err
	}
	defer dec.Close()
	rate := c.Descriptor().SampleRate
	pcm, out, pkt := make([]int16, rate/50), make([]int16, rate/50), make([]byte, 1500)
	var energy float64
	for f := range 10 {
		for i := range pcm {
			pcm[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(f*len(pcm)+i)/float64(rate)))
		}
		n, err := enc.Encode(pkt, pcm)
		if err != nil {
			return err
		}
		k, err := dec.Decode(out, pkt[:n])
		if err != nil {
			return err
		}
		if f >= 5 {
			for _, s := range out[:k] {
				energy += float64(s) * float64(s)
			}
		}
	}
	if rms := math.Sqrt(energy / float64(5*len(out))); rms < 1000 {
		return fmt.Errorf("decoded tone RMS %.0f, want about 5657", rms)
	}
	return nil
}
