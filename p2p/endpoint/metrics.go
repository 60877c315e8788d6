package endpoint

import (
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
}

var (
	descCalls    = prometheus.NewDesc("baton_endpoint_calls_total", "Calls by direction and result.", []string{"direction", "result"}, nil)
	descActive   = prometheus.NewDesc("baton_endpoint_active_calls", "Calls not yet ended.", nil, nil)
	descRejected = prometheus.NewDesc("baton_endpoint_signaling_rejected_total", "Signaling connections or messages refused, by reason.", []string{"reason"}, nil)
	descRTP      = prometheus.NewDesc("baton_endpoint_rtp_packets_total", "RTP packets by kind: sent, received, lost, late, wrong_source, malformed, auth_failed.", []string{"kind"}, nil)
	descConceal  = prometheus.NewDesc("baton_endpoint_frames_concealed_total", "Audio frames concealed by the jitter buffer.", nil, nil)
	descLoggedIn = prometheus.NewDesc("baton_endpoint_logged_in", "1 while the access session is up.", nil, nil)
)

// Register adds the endpoint's metrics to reg (a registry owned by the
// caller; never the global one).
func (e *Endpoint) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{e})
}

type collector struct{ e *Endpoint }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCalls, descActive, descRejected, descRTP, descConceal, descLoggedIn} {
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
		ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(v), k[0], k[1])
	}
	for k, v := range e.stats.rejects {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(v), k)
	}
	e.stats.mu.Unlock()
	for _, cl := range live {
		if s := cl.currentSession(); s != nil {
			addStats(&sum, s.Stats())
		}
	}
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(len(live)))
	ch <- prometheus.MustNewConstMetric(descLoggedIn, prometheus.GaugeValue, loggedIn)
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"sent", sum.PacketsSent}, {"received", sum.PacketsReceived}, {"lost", sum.Lost}, {"late", sum.Late},
		{"wrong_source", sum.WrongSource}, {"malformed", sum.Malformed}, {"auth_failed", sum.AuthFailed},
	} {
		ch <- prometheus.MustNewConstMetric(descRTP, prometheus.CounterValue, float64(kv.v), kv.k)
	}
	ch <- prometheus.MustNewConstMetric(descConceal, prometheus.CounterValue, float64(sum.FramesConcealed))
}
