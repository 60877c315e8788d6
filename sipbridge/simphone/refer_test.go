package simphone

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// notifyRefer sends one NOTIFY of a refer subscription in c's dialog.
func notifyRefer(ctx context.Context, c *Call, frag string, final bool) error {
	req := sip.NewRequest(sip.NOTIFY, c.remote)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte(frag + "\r\n"))
	res, err := c.do(ctx, req)
	if err == nil && res.StatusCode != sip.StatusOK {
		err = errors.New(res.StartLine())
	}
	return err
}

// referPair starts a callee standing in for the gateway, whose REFER
// handler is onRefer, and a caller with a call to it.
func referPair(t *testing.T, notifyTimeout time.Duration, onRefer func(callee *Phone, req *sip.Request, tx sip.ServerTransaction)) (*Phone, *Call) {
	t.Helper()
	ip := netip.MustParseAddr("127.0.0.1")
	callee, err := Start(Config{User: "gw", Gateway: "127.0.0.1:9", IP: ip, Tone: 660, AutoAnswer: true, onRefer: onRefer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { callee.Close() })
	caller, err := Start(Config{User: "alice", Gateway: callee.Addr().String(), IP: ip, Tone: 440, NotifyTimeout: notifyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := caller.Call(ctx, "gw")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-callee.Incoming():
	case <-ctx.Done():
		t.Fatal("the callee never answered")
	}
	return caller, out
}

// A blind transfer the far side accepts (202) and reports with NOTIFY
// sipfrag 100 then 200: Refer returns 200, and the trace shows the whole
// exchange in order.
func TestReferNotified(t *testing.T) {
	t.Parallel()
	referTo := make(chan string, 1)
	notified := make(chan error, 1)
	caller, out := referPair(t, 5*time.Second, func(callee *Phone, req *sip.Request, tx sip.ServerTransaction) {
		referTo <- req.GetHeader("Refer-To").Value()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusAccepted, "Accepted", nil))
		callee.callsMu.Lock()
		c := callee.calls[req.CallID().Value()]
		callee.callsMu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := notifyRefer(ctx, c, "SIP/2.0 100 Trying", false)
			if err == nil {
				err = notifyRefer(ctx, c, "SIP/2.0 200 OK", true)
			}
			notified <- err
		}()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	code, err := out.Refer(ctx, "bob")
	if err != nil || code != 200 {
		t.Fatalf("Refer: %d, %v; want 200, nil", code, err)
	}
	// The notifier's last transaction ends with the phone's 200.
	if err := <-notified; err != nil {
		t.Errorf("the NOTIFYs: %v", err)
	}
	if rt := <-referTo; !strings.Contains(rt, "sip:bob@") {
		t.Errorf("Refer-To %q, want sip:bob@ the gateway", rt)
	}
	want := []string{"-> REFER", "<- 202 Accepted (REFER)", "<- NOTIFY (SIP/2.0 100 Trying)", "-> 200 OK (NOTIFY)", "<- NOTIFY (SIP/2.0 200 OK)", "-> 200 OK (NOTIFY)"}
	var got []string
	for _, m := range caller.Trace() {
		dir := "<- "
		if m.Out {
			dir = "-> "
		}
		got = append(got, dir+m.Label())
	}
	if !containsInOrder(got, want) {
		t.Errorf("the trace\n%s\nlacks, in order,\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A transfer whose final NOTIFY reports a failure returns that status and
// ErrTransfer; one accepted but never notified returns ErrNoNotify after
// NotifyTimeout.
func TestReferFailures(t *testing.T) {
	t.Parallel()
	t.Run("404 in the sipfrag", func(t *testing.T) {
		t.Parallel()
		_, out := referPair(t, 5*time.Second, func(callee *Phone, req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusAccepted, "Accepted", nil))
			callee.callsMu.Lock()
			c := callee.calls[req.CallID().Value()]
			callee.callsMu.Unlock()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = notifyRefer(ctx, c, "SIP/2.0 404 Not Found", true)
			}()
		})
		code, err := out.Refer(t.Context(), "nobody")
		if code != 404 || !errors.Is(err, ErrTransfer) || errors.Is(err, ErrNoNotify) {
			t.Errorf("Refer: %d, %v; want 404 and ErrTransfer", code, err)
		}
	})
	t.Run("no NOTIFY", func(t *testing.T) {
		t.Parallel()
		_, out := referPair(t, 300*time.Millisecond, func(_ *Phone, req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusAccepted, "Accepted", nil))
		})
		code, err := out.Refer(t.Context(), "bob")
		if code != 202 || !errors.Is(err, ErrNoNotify) || !errors.Is(err, ErrTransfer) {
			t.Errorf("Refer: %d, %v; want 202 and ErrNoNotify", code, err)
		}
	})
	t.Run("no target", func(t *testing.T) {
		t.Parallel()
		_, out := referPair(t, time.Second, nil)
		if _, err := out.Refer(t.Context(), ""); !errors.Is(err, ErrTransfer) {
			t.Errorf("Refer to no one: %v, want ErrTransfer", err)
		}
	})
}
