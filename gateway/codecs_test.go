package gateway

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/baton-voice/baton/codecs"
)

// wideCodec stands for a codec plugin that takes 48 kHz PCM.
type wideCodec struct{ rate int }

func (w wideCodec) Descriptor() codecs.Descriptor {
	return codecs.Descriptor{Name: "opus", PayloadType: 111, ClockRate: 48000, Channels: 2, SampleRate: w.rate}
}
func (wideCodec) Encode(dst []byte, pcm []int16) (int, error)     { return 0, nil }
func (wideCodec) Decode(dst []int16, payload []byte) (int, error) { return 0, nil }

// The SIP legs offer only the codecs SDP can carry (G.711); a plugin codec
// joins the P2P side only at the legs' 8 kHz; a list without a SIP codec
// is refused. Each refusal names what is wrong.
func TestGatewayCodecChoice(t *testing.T) {
	t.Parallel()
	reg := func(cs ...codecs.Codec) *codecs.Registry {
		r, err := codecs.NewRegistry(cs...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := Config{Access: "127.0.0.1:1", UDP: "127.0.0.1:0", MediaIP: netip.MustParseAddr("127.0.0.1")}

	c := base
	c.Codecs = reg(wideCodec{8000}, codecs.PCMA(), codecs.PCMU())
	g, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.sipCodecs, ","); got != "PCMA,PCMU" {
		t.Errorf("SIP codecs %q, want PCMA,PCMU (opus stays on the P2P side)", got)
	}

	c = base
	c.Codecs = reg(wideCodec{48000}, codecs.PCMU())
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "opus takes 48000 Hz") || !strings.Contains(err.Error(), "-rate") {
		t.Errorf("a 48 kHz codec: %v, want a refusal naming opus, its rate and the plugin's -rate", err)
	}

	c = base
	c.Codecs = reg(wideCodec{8000})
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "none for the SIP side") {
		t.Errorf("no SIP codec: %v, want a refusal", err)
	}
}
