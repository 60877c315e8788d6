package access

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Login results, the values of the logins_total "result" label.
const (
	loginOK           = iota // authenticated, credential issued
	loginAuthFailed          // unknown user or wrong password
	loginBadRequest          // not a valid login request (or a refused key)
	loginError               // server-side failure (database, CA, store)
	loginRateLimited         // refused by the failed-login limiter, password unchecked
	loginNotDelegated        // a gateway asked for a user not delegated to it
	numLoginResults
)

var loginResultNames = [numLoginResults]string{"ok", "auth_failed", "bad_request", "error", "rate_limited", "not_delegated"}

// Why a session ended, the values of the sessions_ended_total "reason" label.
const endNone = -1 // the session goes on

const (
	endLogout   = iota // the endpoint logged out
	endClosed          // the endpoint closed the connection without logging out
	endTimeout         // silent for longer than Config.Timeout
	endProtocol        // malformed, out-of-sequence or unexpected frame
	endSlow            // did not read its pushes fast enough
	endReplaced        // a new login of the same device replaced it
	endShutdown        // the server or its Serve stopped
	endError           // server-side failure (store, write error)
	numEndReasons
)

var endReasonNames = [numEndReasons]string{"logout", "closed", "timeout", "protocol_error", "slow", "replaced", "shutdown", "error"}

// stats are the server's counters. They are plain atomics so Status works
// without a registry; Register exposes them through a collector.
type stats struct {
	logins  [numLoginResults]atomic.Uint64
	ends    [numEndReasons]atomic.Uint64
	pushes  atomic.Uint64
	online  atomic.Int64
	refused [len(refusedReasons)]atomic.Uint64 // by connlimit.Reason - 1
	pending func() int64                       // connections not logged in yet
	fanout  prometheus.Histogram

	loginsDesc, endsDesc, pushesDesc, onlineDesc, refusedDesc, pendingDesc *prometheus.Desc
}

func newStats() *stats {
	return &stats{
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "baton", Subsystem: "access", Name: "presence_fanout_seconds",
			Help: "Time to queue one presence change to every interested endpoint.",
			// 10 µs .. ~80 ms: fan-out to thousands of endpoints must stay
			// well under a packet time.
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 14),
		}),
		loginsDesc: prometheus.NewDesc("baton_access_logins_total",
			"Login attempts by result.", []string{"result"}, nil),
		endsDesc: prometheus.NewDesc("baton_access_sessions_ended_total",
			"Endpoint sessions ended, by reason.", []string{"reason"}, nil),
		pushesDesc: prometheus.NewDesc("baton_access_presence_pushes_total",
			"Presence messages written to endpoints.", nil, nil),
		onlineDesc: prometheus.NewDesc("baton_access_online_endpoints",
			"Endpoints logged in to this server.", nil, nil),
		refusedDesc: prometheus.NewDesc("baton_access_refused_conns_total",
			"Connections closed at accept because too many had not logged in, by cap.", []string{"reason"}, nil),
		pendingDesc: prometheus.NewDesc("baton_access_pending_conns",
			"Connections that have not logged in yet.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (st *stats) Describe(ch chan<- *prometheus.Desc) {
	ch <- st.loginsDesc
	ch <- st.endsDesc
	ch <- st.pushesDesc
	ch <- st.onlineDesc
	ch <- st.refusedDesc
	ch <- st.pendingDesc
	st.fanout.Describe(ch)
}

// Collect implements prometheus.Collector.
func (st *stats) Collect(ch chan<- prometheus.Metric) {
	for i := range st.logins {
		ch <- prometheus.MustNewConstMetric(st.loginsDesc, prometheus.CounterValue, float64(st.logins[i].Load()), loginResultNames[i])
	}
	for i := range st.ends {
		ch <- prometheus.MustNewConstMetric(st.endsDesc, prometheus.CounterValue, float64(st.ends[i].Load()), endReasonNames[i])
	}
	ch <- prometheus.MustNewConstMetric(st.pushesDesc, prometheus.CounterValue, float64(st.pushes.Load()))
	ch <- prometheus.MustNewConstMetric(st.onlineDesc, prometheus.GaugeValue, float64(st.online.Load()))
	for i, r := range refusedReasons {
		ch <- prometheus.MustNewConstMetric(st.refusedDesc, prometheus.CounterValue, float64(st.refused[i].Load()), r.String())
	}
	ch <- prometheus.MustNewConstMetric(st.pendingDesc, prometheus.GaugeValue, float64(st.pending()))
	st.fanout.Collect(ch)
}

// Register adds the server's metrics to reg (never the global registry):
// baton_access_logins_total{result} (result "rate_limited": refused by the
// failed-login limiter), baton_access_refused_conns_total{reason},
// baton_access_pending_conns, baton_access_online_endpoints,
// baton_access_presence_pushes_total, baton_access_presence_fanout_seconds
// and baton_access_sessions_ended_total{reason}.
func (s *Server) Register(reg prometheus.Registerer) error {
	return reg.Register(s.stats)
}
