package access

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

func TestSIPOnlyUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	db.params = cheapArgon
	mustAddUser(t, db, "alice", "pw-alice")
	if err := db.AddSIPOnlyUser(ctx, "desk1"); err != nil {
		t.Fatalf("AddSIPOnlyUser: %v", err)
	}
	if err := db.AddSIPOnlyUser(ctx, "desk1"); !errors.Is(err, ErrUserExists) {
		t.Errorf("AddSIPOnlyUser twice = %v, want ErrUserExists", err)
	}
	if err := db.AddSIPOnlyUser(ctx, "Desk"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("AddSIPOnlyUser(Desk) = %v, want ErrInvalidName", err)
	}
	// No password logs it in: not the empty one, not any other.
	for _, pw := range []string{"", "x", "pw-alice"} {
		if err := db.Authenticate(ctx, "desk1", pw); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Authenticate(desk1, %q) = %v, want ErrAuthFailed", pw, err)
		}
	}
	users, err := db.Users(ctx)
	want := []UserInfo{{Name: "alice"}, {Name: "desk1", SIPOnly: true}}
	if err != nil || !slices.Equal(users, want) {
		t.Errorf("Users = %v, %v; want %v", users, err, want)
	}
	// A SIP-only user can be a buddy and be delegated like any user.
	if err := db.AddBuddy(ctx, "alice", "desk1"); err != nil {
		t.Errorf("AddBuddy(alice, desk1): %v", err)
	}
	if err := db.AddGateway(ctx, "gw1", "s3cret", []string{"desk1"}); err != nil {
		t.Fatalf("AddGateway: %v", err)
	}
	if ok, err := db.IsDelegated(ctx, "gw1", "desk1"); !ok || err != nil {
		t.Errorf("IsDelegated(gw1, desk1) = %v, %v", ok, err)
	}
	// Giving it a password makes it an ordinary user.
	if err := db.SetPassword(ctx, "desk1", "now-a-password"); err != nil {
		t.Fatal(err)
	}
	if err := db.Authenticate(ctx, "desk1", "now-a-password"); err != nil {
		t.Errorf("Authenticate after SetPassword: %v", err)
	}
}

func TestParseUserCSV(t *testing.T) {
	t.Parallel()
	got, err := ParseUserCSV(strings.NewReader("\ufeffUser,password,gateway,buddies\n"+
		"# a comment line\n"+
		"alice,pw a,,bob carol\n"+
		"bob,,gw1,\n"+
		"\"carol\",\"p,w\",gw1,alice\n"), "users.csv")
	if err != nil {
		t.Fatalf("ParseUserCSV: %v", err)
	}
	want := []ImportUser{
		{Line: 3, Name: "alice", Password: "pw a", Buddies: []string{"bob", "carol"}},
		{Line: 4, Name: "bob", Gateway: "gw1"},
		{Line: 5, Name: "carol", Password: "p,w", Gateway: "gw1", Buddies: []string{"alice"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d users, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Line != w.Line || g.Name != w.Name || g.Password != w.Password || g.Gateway != w.Gateway || !slices.Equal(g.Buddies, w.Buddies) {
			t.Errorf("user %d = %+v, want %+v", i, g, w)
		}
	}
	// Only the user column is required.
	if got, err := ParseUserCSV(strings.NewReader("user\nd1\nd2\n"), "f"); err != nil || len(got) != 2 || got[1].Name != "d2" || got[1].Line != 3 {
		t.Errorf("user column only: %+v, %v", got, err)
	}

	long := strings.Repeat("x", 1100)
	for _, tc := range []struct {
		name, in string
		want     []string // in the error, in order
		sentinel error
	}{
		{"empty file", "", []string{"empty file"}, nil},
		{"no data", "user,password\n", []string{"no users after the header"}, nil},
		{"unknown column", "user,pasword\nalice,x\n", []string{`line 1: unknown column "pasword"`}, nil},
		{"no user column", "password\nx\n", []string{`no "user" column`}, nil},
		{"column twice", "user,user\na,b\n", []string{`column "user" named twice`}, nil},
		{"bad name", "user,password\nalice,x\nAlice,y\n", []string{`line 3, field user: invalid name "Alice"`}, ErrInvalidName},
		{"long password", "user,password\nalice," + long + "\n", []string{"line 2, field password: invalid password: 1100 bytes"}, ErrInvalidPassword},
		{"blank password", "user,password\nalice,  \n", []string{"line 2, field password", "only spaces"}, ErrInvalidPassword},
		{"duplicate", "user\nalice\nbob\nalice\n", []string{"line 4, field user: user already exists: alice is also on line 2"}, ErrUserExists},
		{"cells", "user,password\nalice,x,extra\nbob,y\n", []string{"line 2: wrong number of fields"}, nil},
		{"bad quote", "user,password\nalice,\"x\n", []string{"line 2"}, nil},
		{"self buddy", "user,buddies\nalice,alice\n", []string{"line 2, field buddies: a user cannot be its own buddy"}, ErrSelfBuddy},
		{"bad gateway", "user,gateway\nalice,GW\n", []string{`line 2, field gateway: invalid name "GW"`}, ErrInvalidName},
		{"several", "user,gateway\nA,gw\nb,G\n", []string{"2 problems, nothing imported", "line 2, field user", "line 3, field gateway"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, err := ParseUserCSV(strings.NewReader(tc.in), "users.csv")
			if err == nil {
				t.Fatalf("no error; users %+v", users)
			}
			if users != nil {
				t.Errorf("users returned with an error: %+v", users)
			}
			if !errors.Is(err, ErrImport) {
				t.Errorf("error %v does not match ErrImport", err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("error %v does not match %v", err, tc.sentinel)
			}
			msg, at := err.Error(), 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error %q does not say %q (after offset %d)", msg, w, at)
				}
				at += i + len(w)
			}
			if !strings.HasPrefix(msg, "import users.csv: ") {
				t.Errorf("error %q does not name the file", msg)
			}
		})
	}
	// Many bad lines: the first maxImportProblems are listed, the rest counted.
	var b strings.Builder
	b.WriteString("user\n")
	for i := range 50 {
		fmt.Fprintf(&b, "Bad%d\n", i)
	}
	_, err = ParseUserCSV(strings.NewReader(b.String()), "many.csv")
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Problems) != maxImportProblems || ie.More != 50-maxImportProblems {
		t.Fatalf("50 bad lines: %v", err)
	}
	if !strings.Contains(err.Error(), "50 problems") || !strings.Contains(err.Error(), "... and 30 more") {
		t.Errorf("error does not count the problems: %v", err)
	}
}

func TestImportUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	db.params = cheapArgon
	mustAddUser(t, db, "zed", "pw-zed")
	if err := db.AddGateway(ctx, "gw1", "s3cret", nil); err != nil {
		t.Fatal(err)
	}
	parse := func(t *testing.T, in string) []ImportUser {
		t.Helper()
		users, err := ParseUserCSV(strings.NewReader(in), "in.csv")
		if err != nil {
			t.Fatal(err)
		}
		return users
	}
	snapshot := func() string {
		users, err := db.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gws, err := db.ListGateways(ctx)
		if err != nil {
			t.Fatal(err)
		}
		zb, err := db.Buddies(ctx, "zed")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(users, gws[0].Users, zb)
	}
	before := snapshot()

	// Refusals write nothing, and name the line and field.
	for _, tc := range []struct {
		name, in, want string
		sentinel       error
	}{
		{"existing user", "user,password\nnew1,x\nzed,y\n", "line 3, field user: user already exists: zed", ErrUserExists},
		{"unknown gateway", "user,gateway\nnew1,gw1\nnew2,gw9\n", "line 3, field gateway: no such gateway: gw9 (create it first: baton gateway add gw9)", ErrNoSuchGateway},
		{"unknown buddy", "user,buddies\nnew1,zed new2\nnew2,ghost\n", "line 3, field buddies: no such user: ghost", ErrNoSuchUser},
	} {
		_, err := db.ImportUsers(ctx, parse(t, tc.in), "in.csv")
		if !errors.Is(err, ErrImport) || !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ImportUsers = %v, want %q (%v)", tc.name, err, tc.want, tc.sentinel)
		}
		if got := snapshot(); got != before {
			t.Errorf("%s: the refused import changed the database: %s, was %s", tc.name, got, before)
		}
	}
	// Users handed in directly (not through ParseUserCSV) are checked too.
	if _, err := db.ImportUsers(ctx, []ImportUser{{Name: "ok"}, {Name: "Not OK", Line: 7}}, "api"); !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "line 7, field user") {
		t.Errorf("ImportUsers with a bad name = %v", err)
	}

	st, err := db.ImportUsers(ctx, parse(t, "user,password,gateway,buddies\n"+
		"d1,,gw1,zed\n"+
		"d2,,gw1,d1\n"+
		"p1,pw-p1,,d1 zed\n"+
		"d3,,gw1,d2\n"), "in.csv")
	if err != nil {
		t.Fatalf("ImportUsers: %v", err)
	}
	if want := (ImportStats{Users: 4, SIPOnly: 3, Delegations: 3, BuddyLinks: 5}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if s := st.String(); s != "imported 4 users (3 SIP-only), 3 delegated to a gateway, 5 buddy links" {
		t.Errorf("summary %q", s)
	}
	users, _ := db.Users(ctx)
	if want := []UserInfo{{"d1", true}, {"d2", true}, {"d3", true}, {"p1", false}, {"zed", false}}; !slices.Equal(users, want) {
		t.Errorf("Users = %v, want %v", users, want)
	}
	if err := db.Authenticate(ctx, "p1", "pw-p1"); err != nil {
		t.Errorf("imported password: %v", err)
	}
	if err := db.Authenticate(ctx, "d1", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("SIP-only d1 authenticated: %v", err)
	}
	if gu, _ := db.GatewayUsers(ctx, "gw1"); !slices.Equal(gu, []string{"d1", "d2", "d3"}) {
		t.Errorf("gw1 users %v", gu)
	}
	if b, _ := db.Buddies(ctx, "d1"); !slices.Equal(b, []string{"d2", "p1", "zed"}) {
		t.Errorf("d1 buddies %v", b)
	}
	// Importing the same file again is refused: the users exist.
	if _, err := db.ImportUsers(ctx, parse(t, "user\nd1\n"), "again.csv"); !errors.Is(err, ErrUserExists) {
		t.Errorf("second import = %v, want ErrUserExists", err)
	}
}

// Ten thousand SIP-only users delegated to one gateway import in one
// transaction with no argon2 work (the time is logged, not asserted).
func TestImportUsersTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	if err := db.AddGateway(ctx, "gw1", "s3cret", nil); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("user,gateway\n")
	for i := range 10000 {
		fmt.Fprintf(&b, "u%05d,gw1\n", i)
	}
	users, err := ParseUserCSV(strings.NewReader(b.String()), "10k.csv")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	st, err := db.ImportUsers(ctx, users, "10k.csv")
	t.Logf("10,000 SIP-only users imported in %v", time.Since(t0))
	if err != nil || st.Users != 10000 || st.Delegations != 10000 {
		t.Fatalf("ImportUsers = %+v, %v", st, err)
	}
	if gu, _ := db.GatewayUsers(ctx, "gw1"); len(gu) != 10000 {
		t.Errorf("gw1 has %d users, want 10000", len(gu))
	}
}

// FuzzParseUserCSV: any input either parses into users that all pass the
// checks (valid, unique names; passwords within bounds; increasing lines),
// which survive being written back as CSV and parsed again, or is an
// *ImportError; never a panic.
func FuzzParseUserCSV(f *testing.F) {
	for _, s := range []string{
		"user,password,gateway,buddies\nalice,pw,gw1,bob\nbob,,gw1,\n",
		"user\nd1\n# comment\nd2\n",
		"\ufeffuser,password\n\"al\"\"ice\",x\n",
		"user,password\nalice,\"multi\nline\"\n",
		"user,user\n",
		"password\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		users, err := ParseUserCSV(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			var ie *ImportError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 || !errors.Is(err, ErrImport) {
				t.Fatalf("error %v is not an ImportError with problems", err)
			}
			if users != nil {
				t.Fatalf("users with an error")
			}
			return
		}
		seen := map[string]bool{}
		last := 0
		var b strings.Builder
		b.WriteString("user,password,gateway,buddies\n")
		w := csv.NewWriter(&b)
		for _, u := range users {
			if !pki.ValidName(u.Name) || seen[u.Name] || len(u.Password) > wire.MaxPassword || u.Line <= last {
				t.Fatalf("bad user accepted: %+v (last line %d)", u, last)
			}
			if u.Gateway != "" && !pki.ValidName(u.Gateway) {
				t.Fatalf("bad gateway accepted: %+v", u)
			}
			seen[u.Name], last = true, u.Line
			_ = w.Write([]string{u.Name, u.Password, u.Gateway, strings.Join(u.Buddies, " ")})
		}
		w.Flush()
		again, err := ParseUserCSV(strings.NewReader(b.String()), "again.csv")
		if err != nil || len(again) != len(users) {
			t.Fatalf("round trip: %v (%d users, want %d)\n%s", err, len(again), len(users), b.String())
		}
		for i := range users {
			a, u := again[i], users[i]
			if a.Name != u.Name || a.Password != u.Password || a.Gateway != u.Gateway || !slices.Equal(a.Buddies, u.Buddies) {
				t.Fatalf("round trip changed %+v into %+v", u, a)
			}
		}
	})
}
