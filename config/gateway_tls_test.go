package config

import "testing"

func TestValidateGatewayTLS(t *testing.T) {
	t.Parallel()
	runValidate(t, validGateway, Gateway.Validate, []vcase[Gateway]{
		{"tls off by default", func(c *Gateway) {}, ""},
		{"tls with cert and key", func(c *Gateway) { c.SIP.TLS, c.SIP.TLSCert, c.SIP.TLSKey = "127.0.0.1:5061", "c.pem", "k.pem" }, ""},
		{"tls only", func(c *Gateway) {
			c.SIP.UDP, c.SIP.TCP, c.SIP.TLS, c.SIP.TLSCert, c.SIP.TLSKey = "", "", "127.0.0.1:0", "c.pem", "k.pem"
		}, ""},
		{"tls without cert", func(c *Gateway) { c.SIP.TLS, c.SIP.TLSKey = "127.0.0.1:5061", "k.pem" }, "sip.tls_cert"},
		{"tls without key", func(c *Gateway) { c.SIP.TLS, c.SIP.TLSCert = "127.0.0.1:5061", "c.pem" }, "sip.tls_key"},
		{"tls bad address", func(c *Gateway) { c.SIP.TLS, c.SIP.TLSCert, c.SIP.TLSKey = "127.0.0.1", "c.pem", "k.pem" }, "sip.tls"},
		{"cert without tls", func(c *Gateway) { c.SIP.TLSCert, c.SIP.TLSKey = "c.pem", "k.pem" }, "sip.tls"},
	})
}
