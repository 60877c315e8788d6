package access_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/baton-voice/baton/p2p/access"
	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// A server on loopback, one user, one endpoint logging in with the CA
// certificate from the server's data directory.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "baton-access-example")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	srv, err := access.NewServer(ctx, access.Config{DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	if err := srv.Users().AddUser(ctx, "alice", "correct horse"); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, ln) }()

	roots, err := pki.LoadCAFile(filepath.Join(dir, pki.CACertFile))
	if err != nil {
		log.Fatal(err)
	}
	c, err := access.Login(ctx, access.ClientConfig{
		Addr:       ln.Addr().String(),
		Roots:      roots,
		User:       "alice",
		Device:     "laptop",
		Password:   "correct horse",
		SignalAddr: netip.MustParseAddrPort("0.0.0.0:5070"), // "use the address you see"
		OnPresence: func(d wire.Device) { fmt.Println("presence:", d.User, d.Device, d.Status) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	cert, _ := c.Certificate()
	id, _ := pki.IdentityFromCert(cert.Leaf)
	fmt.Println("logged in as", id)
	// Output: logged in as alice/laptop
}
