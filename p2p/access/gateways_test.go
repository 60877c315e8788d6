package access

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// addGateway issues gateway name for users and returns its secret.
func (e *testEnv) addGateway(name string, users ...string) string {
	e.t.Helper()
	secret := NewGatewaySecret()
	if err := e.srv.Users().AddGateway(context.Background(), name, secret, users); err != nil {
		e.t.Fatalf("AddGateway(%s): %v", name, err)
	}
	return secret
}

func withGateway(name, secret string) loginOpt {
	return func(c *ClientConfig) { c.Gateway, c.Password = name, secret }
}

func TestUserDBGateways(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	mustAddUser(t, db, "alice", "pw-alice")
	mustAddUser(t, db, "carol", "pw-carol")
	if err := db.AddGateway(ctx, "gw1", "s3cret", []string{"alice", "carol"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		gw      string
		users   []string
		secret  string
		wantErr error
	}{
		{"taken name", "gw1", []string{"alice"}, "x", ErrGatewayExists},
		{"unknown user", "gw2", []string{"alice", "bob"}, "x", ErrNoSuchUser},
		{"bad name", "GW", []string{"alice"}, "x", ErrInvalidName},
		{"empty secret", "gw4", []string{"alice"}, "", ErrInvalidPassword},
	} {
		if err := db.AddGateway(ctx, tc.gw, tc.secret, tc.users); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: AddGateway = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	// A refused add leaves nothing behind.
	gws, err := db.ListGateways(ctx)
	if err != nil || len(gws) != 1 || gws[0].Name != "gw1" || !slices.Equal(gws[0].Users, []string{"alice", "carol"}) {
		t.Fatalf("ListGateways = %+v, %v; want gw1 with alice,carol", gws, err)
	}
	// A credential may start with no users (they are delegated later, by
	// Delegate or by an import's gateway column).
	if err := db.AddGateway(ctx, "gw3", "x", nil); err != nil {
		t.Fatalf("AddGateway with no users: %v", err)
	}
	if users, err := db.GatewayUsers(ctx, "gw3"); err != nil || len(users) != 0 {
		t.Fatalf("GatewayUsers(gw3) = %v, %v; want none", users, err)
	}
	if err := db.DeleteGateway(ctx, "gw3"); err != nil {
		t.Fatal(err)
	}
	// The secret is stored hashed, like a password.
	var stored string
	if err := db.db.QueryRow(`SELECT secret FROM gateways WHERE name = 'gw1'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "$argon2id$") || strings.Contains(stored, "s3cret") {
		t.Fatalf("stored secret %q is not an argon2id hash", stored)
	}
	for _, tc := range []struct {
		name, gw, secret string
		want             error
	}{
		{"right secret", "gw1", "s3cret", nil},
		{"wrong secret", "gw1", "s3cret2", ErrAuthFailed},
		{"unknown gateway", "gw9", "s3cret", ErrAuthFailed},
		{"user password is no gateway secret", "alice", "pw-alice", ErrAuthFailed},
	} {
		users, err := db.AuthenticateGateway(ctx, tc.gw, tc.secret)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: AuthenticateGateway = %v, want %v", tc.name, err, tc.want)
		}
		if err == nil && !slices.Equal(users, []string{"alice", "carol"}) {
			t.Errorf("%s: users %v", tc.name, users)
		}
	}
	// Delegations change without a new secret.
	mustAddUser(t, db, "bob", "pw-bob")
	if err := db.Delegate(ctx, "gw1", []string{"bob", "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Undelegate(ctx, "gw1", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if users, _ := db.GatewayUsers(ctx, "gw1"); !slices.Equal(users, []string{"bob", "carol"}) {
		t.Fatalf("after delegate bob, undelegate alice: %v", users)
	}
	if err := db.Delegate(ctx, "gw1", []string{"nobody"}); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("delegate an unknown user: %v", err)
	}
	if err := db.Delegate(ctx, "gw9", []string{"bob"}); !errors.Is(err, ErrNoSuchGateway) {
		t.Fatalf("delegate to an unknown gateway: %v", err)
	}
	if err := db.Delegate(ctx, "gw1", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	// Deleting a user withdraws its delegation.
	if err := db.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if users, _ := db.GatewayUsers(ctx, "gw1"); !slices.Equal(users, []string{"alice", "bob"}) {
		t.Fatalf("after deleting carol: users %v", users)
	}
	if err := db.DeleteGateway(ctx, "gw1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteGateway(ctx, "gw1"); !errors.Is(err, ErrNoSuchGateway) {
		t.Fatalf("DeleteGateway twice = %v, want ErrNoSuchGateway", err)
	}
	if _, err := db.AuthenticateGateway(ctx, "gw1", "s3cret"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("removed gateway authenticates: %v", err)
	}
}

// TestGatewayLoginDelegation: a gateway credential logs in the devices of
// the users delegated to it, with a certificate that says bridged, and is
// refused, naming user and gateway, for any other user.
func TestGatewayLoginDelegation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice", "carol", "bob")
	e.buddies([2]string{"alice", "bob"})
	secret := e.addGateway("gw1", "alice")

	c := e.login("alice", "desk", withGateway("gw1", secret))
	cert, err := c.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if by := pki.BridgedBy(cert.Leaf); by != "gw1" {
		t.Fatalf("certificate of a bridged device: BridgedBy = %q, want gw1", by)
	}
	if id, err := pki.IdentityFromCert(cert.Leaf); err != nil || id != (pki.Identity{User: "alice", Device: "desk"}) {
		t.Fatalf("identity %v, %v", id, err)
	}
	if len(c.Profile().Buddies) != 1 || c.Profile().Buddies[0].User != "bob" {
		t.Fatalf("bridged device's profile: %+v", c.Profile())
	}
	// bob, a P2P phone with its own password, gets an unmarked certificate.
	bob := e.login("bob", "laptop")
	if bc, _ := bob.Certificate(); pki.BridgedBy(bc.Leaf) != "" {
		t.Fatal("a P2P phone's certificate says bridged")
	}

	ctx := context.Background()
	_, err = Login(ctx, e.clientConfig("carol", "desk", withGateway("gw1", secret)))
	var nd *NotDelegatedError
	if !errors.Is(err, ErrNotDelegated) || !errors.As(err, &nd) || nd.Gateway != "gw1" || nd.User != "carol" {
		t.Fatalf("carol through gw1: %v, want NotDelegatedError naming gw1 and carol", err)
	}
	for _, want := range []string{"gw1", "carol/desk", "not delegated"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !strings.Contains(e.logs.String(), "not delegated") {
		t.Error("server log does not say why carol was refused")
	}

	// bob/laptop is online with bob's own password: no gateway (even one
	// bob were delegated to) may take it over.
	if err := e.srv.Users().Delegate(ctx, "gw1", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Login(ctx, e.clientConfig("bob", "laptop", withGateway("gw1", secret))); err == nil || !strings.Contains(err.Error(), "own login") {
		t.Fatalf("gateway login over bob's own: %v", err)
	}
	if bob.Err() != nil {
		t.Fatalf("bob's own session ended: %v", bob.Err())
	}

	// The gateway's secret is no user password, and a user's password no
	// gateway secret.
	if _, err := Login(ctx, e.clientConfig("alice", "desk2", withGateway("gw1", password("alice")))); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("gateway login with alice's password: %v, want ErrAuthFailed", err)
	}
	if _, err := Login(ctx, e.clientConfig("alice", "desk2", func(c *ClientConfig) { c.Password = secret })); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("user login with the gateway's secret: %v, want ErrAuthFailed", err)
	}
	if _, err := Login(ctx, e.clientConfig("alice", "desk2", withGateway("gw9", secret))); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("unknown gateway: %v, want ErrAuthFailed", err)
	}
	st := e.srv.Status()
	if st.NotDelegated != 2 || st.AuthFailures != 3 {
		t.Fatalf("status: not_delegated %d auth_failures %d, want 2 and 3", st.NotDelegated, st.AuthFailures)
	}
}

// TestGatewayLoginLimiter: wrong gateway secrets count against the same
// failed-login limiter as wrong passwords; once limited, even the right
// secret is refused without being checked, and other sources are not.
func TestGatewayLoginLimiter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Limits.UserFailBurst = 2; c.Limits.SourceFailBurst = 10 })
	e.addUsers("alice")
	secret := e.addGateway("gw1", "alice")
	ctx := context.Background()
	for i := range 2 {
		_, err := Login(ctx, e.clientConfig("alice", "desk", withLocal("127.0.0.2"), withGateway("gw1", "wrong")))
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("wrong secret %d: %v", i+1, err)
		}
	}
	_, err := Login(ctx, e.clientConfig("alice", "desk", withLocal("127.0.0.2"), withGateway("gw1", secret)))
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("right secret after the burst: %v, want rate limited with a wait", err)
	}
	// The limit is the gateway's at that source: alice's own password
	// still works there, and the gateway from another source.
	e.login("alice", "laptop", withLocal("127.0.0.2"))
	e.login("alice", "desk", withLocal("127.0.0.3"), withGateway("gw1", secret))
}

// TestGatewayRenewAfterUndelegation: a delegation withdrawn while the
// device is online ends its credential at the next renewal.
func TestGatewayRenewAfterUndelegation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.addUsers("alice")
	secret := e.addGateway("gw1", "alice")
	c := e.login("alice", "desk", withGateway("gw1", secret))
	if err := e.srv.Users().DeleteGateway(context.Background(), "gw1"); err != nil {
		t.Fatal(err)
	}
	if err := c.wc.Send(&wire.RenewRequest{}, wait); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctxTimeout(t):
		t.Fatal("session not ended after renewal with a removed gateway")
	}
	if !strings.Contains(e.logs.String(), "not delegated") {
		t.Errorf("server log does not say why:\n%s", e.logs.String())
	}
}

func ctxTimeout(t *testing.T) <-chan struct{} {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx.Done()
}
