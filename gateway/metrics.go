package gateway

import "github.com/prometheus/client_golang/prometheus"

var (
	descRegistered  = prometheus.NewDesc("baton_gateway_registered_devices", "SIP accounts with a live registration.", nil, nil)
	descOnline      = prometheus.NewDesc("baton_gateway_online_devices", "Bridged devices logged in to the access server.", nil, nil)
	descCalls       = prometheus.NewDesc("baton_gateway_active_calls", "Bridged calls in progress.", nil, nil)
	descRegisters   = prometheus.NewDesc("baton_gateway_registers_total", "Successful REGISTER requests.", nil, nil)
	descAuthFailed  = prometheus.NewDesc("baton_gateway_auth_failures_total", "Failed digest authentications.", nil, nil)
	descAuthReplay  = prometheus.NewDesc("baton_gateway_auth_replays_total", "Requests refused because their digest credentials were already used (a retransmission read late, or a replay); not counted as failures.", nil, nil)
	descAuthLimit   = prometheus.NewDesc("baton_gateway_auth_limited_total", "Requests refused because their source failed authentication too often.", nil, nil)
	descSIPSRefused = prometheus.NewDesc("baton_gateway_sips_refused_total", "Requests for a sips: URI refused (416) because they did not come over TLS.", nil, nil)
	descLegPackets  = prometheus.NewDesc("baton_gateway_sip_packets_total", "RTP packets on the SIP legs of calls in progress, by direction.", []string{"direction"}, nil)
	descLegRTCP     = prometheus.NewDesc("baton_gateway_sip_rtcp_packets_total", "RTCP compound packets on the SIP legs of calls in progress, by direction.", []string{"direction"}, nil)
	descLegDropped  = prometheus.NewDesc("baton_gateway_sip_dropped_packets_total", "RTP packets dropped on the SIP legs of calls in progress, by reason.", []string{"reason"}, nil)
)

type collector struct{ g *Gateway }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRegistered, descOnline, descCalls, descRegisters, descAuthFailed, descAuthReplay, descAuthLimit, descSIPSRefused, descLegPackets, descLegRTCP, descLegDropped} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	registered, online := 0, 0
	for user, d := range g.devices {
		if len(g.bindings.Contacts(user)) > 0 {
			registered++
		}
		if d.isOnline() {
			online++
		}
	}
	calls := g.Calls()
	var in, out, wrong, malformed, pt, srtpAuth, srtpReplay uint64
	var rtcpIn, rtcpOut, rtcpWrong, rtcpMalformed, srtcpAuth uint64
	for _, ci := range calls {
		in += ci.SIPLeg.Received
		out += ci.SIPLeg.Sent
		wrong += ci.SIPLeg.WrongSource
		malformed += ci.SIPLeg.Malformed
		pt += ci.SIPLeg.WrongPT
		srtpAuth += ci.SIPLeg.SRTPAuthFailed
		srtpReplay += ci.SIPLeg.SRTPReplayed
		if r := ci.SIPLeg.RTCP; r != nil {
			rtcpIn, rtcpOut, rtcpWrong, rtcpMalformed, srtcpAuth = rtcpIn+r.Received, rtcpOut+r.Sent, rtcpWrong+r.WrongSource, rtcpMalformed+r.Malformed, srtcpAuth+r.SRTCPAuthFailed
		}
	}
	ch <- prometheus.MustNewConstMetric(descRegistered, prometheus.GaugeValue, float64(registered))
	ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(online))
	ch <- prometheus.MustNewConstMetric(descCalls, prometheus.GaugeValue, float64(len(calls)))
	ch <- prometheus.MustNewConstMetric(descRegisters, prometheus.CounterValue, float64(g.stats.registers.Load()))
	ch <- prometheus.MustNewConstMetric(descAuthFailed, prometheus.CounterValue, float64(g.stats.authFailed.Load()))
	ch <- prometheus.MustNewConstMetric(descAuthReplay, prometheus.CounterValue, float64(g.stats.authReplayed.Load()))
	ch <- prometheus.MustNewConstMetric(descAuthLimit, prometheus.CounterValue, float64(g.stats.authLimited.Load()))
	ch <- prometheus.MustNewConstMetric(descSIPSRefused, prometheus.CounterValue, float64(g.stats.sipsRefused.Load()))
	ch <- prometheus.MustNewConstMetric(descLegPackets, prometheus.CounterValue, float64(in), "received")
	ch <- prometheus.MustNewConstMetric(descLegPackets, prometheus.CounterValue, float64(out), "sent")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(wrong), "wrong-source")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(malformed), "malformed")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(pt), "wrong-payload-type")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(srtpAuth), "srtp-auth-failed")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(srtpReplay), "srtp-replayed")
	ch <- prometheus.MustNewConstMetric(descLegRTCP, prometheus.CounterValue, float64(rtcpIn), "received")
	ch <- prometheus.MustNewConstMetric(descLegRTCP, prometheus.CounterValue, float64(rtcpOut), "sent")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(rtcpWrong), "rtcp-wrong-source")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(rtcpMalformed), "rtcp-malformed")
	ch <- prometheus.MustNewConstMetric(descLegDropped, prometheus.CounterValue, float64(srtcpAuth), "srtcp-auth-failed")
}

// Register adds the gateway's metrics to reg.
func (g *Gateway) Register(reg prometheus.Registerer) error {
	if err := reg.Register(collector{g}); err != nil {
		return err
	}
	// The P2P host's own counters: refusals before an endpoint is chosen,
	// endpoints on its listener, in-process connections (docs/host.md).
	return g.host.Register(reg)
}

// Status is the gateway's view for the control API's /v1/status.
type Status struct {
	SIP           map[string]string `json:"sip"`
	Registrations []Registration    `json:"registrations"`
	Calls         []CallInfo        `json:"calls"`
	Trunks        []TrunkStatus     `json:"trunks,omitempty"`
	// Credential is the gateway credential the devices log in with, and
	// whether its shared access session is connected; absent without one.
	Credential *CredentialStatus `json:"credential,omitempty"`
}

// CredentialStatus reports the gateway's shared access session.
type CredentialStatus struct {
	Gateway   string `json:"gateway"`
	Connected bool   `json:"connected"`
}

// Status reports listeners, registrations and calls.
func (g *Gateway) Status() Status {
	g.mu.Lock()
	addrs := map[string]string{}
	for k, v := range g.addrs {
		addrs[k] = v
	}
	g.mu.Unlock()
	st := Status{SIP: addrs, Registrations: g.Registrations(), Calls: g.Calls(), Trunks: g.Trunks()}
	if g.access != nil {
		st.Credential = &CredentialStatus{Gateway: g.access.Gateway(), Connected: g.access.Connected()}
	}
	return st
}
