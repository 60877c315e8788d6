package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// sipvicious' svwar, the usual SIP extension scanner, is run against the
// real gateway with a dictionary that holds its one account (alice) among
// names that do not exist, with each request method svwar knows. The
// gateway answers a known and an unknown user alike (issue 8 §5), so svwar
// must report no extension: if it lists alice, the gateway leaks which
// users exist.
func TestE2EGatewaySvwarEnumeratesNothing(t *testing.T) {
	t.Parallel()
	svwar := needTool(t, "svwar")
	n := startGatewayNet(t)
	host, port, ok := strings.Cut(n.sipUDP, ":")
	if !ok {
		t.Fatalf("gateway SIP address %q", n.sipUDP)
	}
	dict := writeFile(t, n.dir, "names.txt", "100\nadmin\nalice\nbob\ncarol\n1000\ndesk\n")
	for _, method := range []string{"REGISTER", "INVITE", "OPTIONS"} {
		t.Run(method, func(t *testing.T) {
			cmd := exec.Command(svwar, "-m", method, "-d", dict, "-p", port, "-b", "127.0.0.1",
				"-P", freeUDPPort(t), "--maximumtime=10", "--force", host)
			cmd.Dir = n.dir
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("svwar -m %s did not finish:\n%s", method, out)
			}
			text := string(out)
			t.Logf("svwar -m %s: %v\n%s", method, err, tail(text, 2000))
			for _, line := range strings.Split(text, "\n") {
				// svwar's result table: "| alice | reqauth |".
				if f := strings.Fields(strings.Trim(line, "| ")); len(f) > 0 && f[0] == "alice" {
					t.Errorf("svwar -m %s found extension alice: %q", method, line)
				}
			}
			if strings.Contains(text, "Traceback") {
				t.Errorf("svwar -m %s crashed; the run shows nothing", method)
			}
			// svwar's own verdict when every name was answered alike.
			if !strings.Contains(text, "found nothing") {
				t.Errorf("svwar -m %s did not conclude \"found nothing\"", method)
			}
		})
	}
	if n.gw.exited() {
		t.Fatal("gateway exited during the scan")
	}
}
