package endpoint

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-voice/baton/p2p/media"
)

// counters holds the endpoint's cumulative statistics. Media counters of
// live calls are added at collection time.
type counters struct {
	mu      sync.Mutex
	calls   map[[2]string]uint64 // (direction, result) -> count
	rejects map[string]uint64    // reason -> count
	media   media.Stats          // sums over ended sessions
}

func newCounters() *counters {
	return &counters{calls: map[[2]string]uint64{}, rejects: map[string]uint64{}}
}

func (c *counters) callResult(dir, result string) {
	c.mu.Lock()
	c.calls[[2]string{dir, result}]++
	c.mu.Unlock()
}

func (c *counters) rejected(reason string) {
	c.mu.Lock()
	c.rejects[reason]++
	c.mu.Unlock()
}

func (c *counters) addMedia(st media.Stats) {
	c.mu.Lock()
	addStats(&c.media, st)
	c.mu.Unlock()
}

func addStats(dst *media.Stats, st media.Stats) {
	dst.PacketsSent += st.PacketsSent
	dst.PacketsReceived += st.PacketsReceived
	dst.Lost += st.Lost
	dst.Late += st.Late
	dst.WrongSource += st.WrongSource
	dst.Malformed += st.Malformed
	dst.AuthFailed += st.AuthFailed
	dst.FramesConcealed += st.FramesConcealed
	dst.ConsentProbes += st.ConsentProbes
	dst.NotSentNoConsent += st.NotSentNoConsent
	dst.ConsentLapses += st.ConsentLapses
}

// descs are the endpoint's metric descriptions. Each carries the
// endpoint's identity as the constant label "device", so many endpoints of
// one process (a gateway) register into one registry side by side.
type descs struct {
	calls, active, rejected, rtp, conceal, loggedIn, lapses *prometheus.Desc
}

func newDescs(device string) descs {
	l := prometheus.Labels{"device": device}
	return descs{
		calls:    prometheus.NewDesc("baton_endpoint_calls_total", "Calls by direction and result.", []string{"direction", "result"}, l),
		active:   prometheus.NewDesc("baton_endpoint_active_calls", "Calls not yet ended.", nil, l),
		rejected: prometheus.NewDesc("baton_endpoint_signaling_rejected_total", "Signaling connections or messages refused, by reason.", []string{"reason"}, l),
		rtp:      prometheus.NewDesc("baton_endpoint_rtp_packets_total", "RTP packets by kind: sent, received, lost, late, wrong_source, malformed, auth_failed, consent_probe (sent to a remote without consent), not_sent_no_consent (held back from one).", []string{"kind"}, l),
		conceal:  prometheus.NewDesc("baton_endpoint_frames_concealed_total", "Audio frames concealed by the jitter buffer.", nil, l),
		loggedIn: prometheus.NewDesc("baton_endpoint_logged_in", "1 while the access session is up.", nil, l),
		lapses:   prometheus.NewDesc("baton_endpoint_media_consent_lapses_total", "Times a far party's media consent expired (nothing authenticated from it for the consent timeout) and sending stopped.", nil, l),
	}
}

// Register adds the endpoint's metrics to reg (a registry owned by the
// caller; never the global one). Every series has a "device" label with
// the endpoint's user/device, so several endpoints can share reg.
func (e *Endpoint) Register(reg prometheus.Registerer) error {
	if err := reg.Register(collector{e: e, d: newDescs(e.id.String())}); err != nil {
		return fmt.Errorf("endpoint: metrics of %s: %w", e.id, err)
	}
	return nil
}

type collector struct {
	e *Endpoint
	d descs
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.d.calls, c.d.active, c.d.rejected, c.d.rtp, c.d.conceal, c.d.loggedIn, c.d.lapses} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	live := make([]*call, 0, len(e.calls))
	for _, cl := range e.calls {
		live = append(live, cl)
	}
	loggedIn := 0.0
	if e.client != nil {
		loggedIn = 1
	}
	e.mu.Unlock()
	e.stats.mu.Lock()
	sum := e.stats.media
	for k, v := range e.stats.calls {
		ch <- prometheus.MustNewConstMetric(c.d.calls, prometheus.CounterValue, float64(v), k[0], k[1])
	}
	for k, v := range e.stats.rejects {
		ch <- prometheus.MustNewConstMetric(c.d.rejected, prometheus.CounterValue, float64(v), k)
	}
	e.stats.mu.Unlock()
	for _, cl := range live {
		if s := cl.currentSession(); s != nil {
			addStats(&sum, s.Stats())
		}
	}
	ch <- prometheus.MustNewConstMetric(c.d.active, prometheus.GaugeValue, float64(len(live)))
	ch <- prometheus.MustNewConstMetric(c.d.loggedIn, prometheus.GaugeValue, loggedIn)
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"sent", sum.PacketsSent}, {"received", sum.PacketsReceived}, {"lost", sum.Lost}, {"late", sum.Late},
		{"wrong_source", sum.WrongSource}, {"malformed", sum.Malformed}, {"auth_failed", sum.AuthFailed},
		{"consent_probe", sum.ConsentProbes}, {"not_sent_no_consent", sum.NotSentNoConsent},
	} {
		ch <- prometheus.MustNewConstMetric(c.d.rtp, prometheus.CounterValue, float64(kv.v), kv.k)
	}
	ch <- prometheus.MustNewConstMetric(c.d.conceal, prometheus.CounterValue, float64(sum.FramesConcealed))
	ch <- prometheus.MustNewConstMetric(c.d.lapses, prometheus.CounterValue, float64(sum.ConsentLapses))
}
