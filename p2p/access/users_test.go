package access

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func openTestDB(t *testing.T, path string) *UserDB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), UsersFile)
	}
	db, err := OpenUserDB(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenUserDB: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustAddUser(t *testing.T, db *UserDB, name, pw string) {
	t.Helper()
	if err := db.AddUser(context.Background(), name, pw); err != nil {
		t.Fatalf("AddUser(%s): %v", name, err)
	}
}

func storedHash(t *testing.T, db *UserDB, name string) string {
	t.Helper()
	var h string
	if err := db.db.QueryRow(`SELECT password FROM users WHERE name = ?`, name).Scan(&h); err != nil {
		t.Fatalf("read hash of %s: %v", name, err)
	}
	return h
}

func TestUserDBUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	mustAddUser(t, db, "carol", "pw-carol")
	mustAddUser(t, db, "alice", "pw-alice")
	mustAddUser(t, db, "bob", "pw-bob")

	users, err := db.ListUsers(ctx)
	if err != nil || !slices.Equal(users, []string{"alice", "bob", "carol"}) {
		t.Fatalf("ListUsers = %v, %v; want [alice bob carol]", users, err)
	}
	if err := db.AddUser(ctx, "alice", "other"); !errors.Is(err, ErrUserExists) {
		t.Fatalf("AddUser(existing) = %v, want ErrUserExists", err)
	}
	if err := db.AddUser(ctx, "dave", ""); !errors.Is(err, ErrInvalidPassword) {
		t.Fatalf("AddUser(empty password) = %v, want ErrInvalidPassword", err)
	}

	for _, tc := range []struct {
		name, user, pw string
		want           error
	}{
		{"right password", "alice", "pw-alice", nil},
		{"wrong password", "alice", "pw-bob", ErrAuthFailed},
		{"empty password", "alice", "", ErrAuthFailed},
		{"unknown user", "mallory", "pw-alice", ErrAuthFailed},
		{"invalid user name", "Alice", "pw-alice", ErrAuthFailed},
	} {
		err := db.Authenticate(ctx, tc.user, tc.pw)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Authenticate = %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), tc.pw) && tc.pw != "" {
			t.Errorf("%s: error %q leaks the password", tc.name, err)
		}
	}

	if err := db.SetPassword(ctx, "alice", "new-pw"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if err := db.Authenticate(ctx, "alice", "pw-alice"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("old password after SetPassword = %v, want ErrAuthFailed", err)
	}
	if err := db.Authenticate(ctx, "alice", "new-pw"); err != nil {
		t.Fatalf("new password after SetPassword = %v", err)
	}
	if err := db.SetPassword(ctx, "mallory", "x"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("SetPassword(unknown) = %v, want ErrNoSuchUser", err)
	}

	if err := db.DeleteUser(ctx, "bob"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if err := db.DeleteUser(ctx, "bob"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("DeleteUser(twice) = %v, want ErrNoSuchUser", err)
	}
	if err := db.Authenticate(ctx, "bob", "pw-bob"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("deleted user authenticates: %v", err)
	}
	if ok, err := db.HasUser(ctx, "bob"); ok || err != nil {
		t.Fatalf("HasUser(deleted) = %v, %v", ok, err)
	}
	users, _ = db.ListUsers(ctx)
	if !slices.Equal(users, []string{"alice", "carol"}) {
		t.Fatalf("ListUsers after delete = %v", users)
	}
}

func TestUserDBBuddies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		mustAddUser(t, db, u, "pw")
	}
	for _, p := range [][2]string{{"alice", "bob"}, {"carol", "alice"}, {"bob", "dave"}} {
		if err := db.AddBuddy(ctx, p[0], p[1]); err != nil {
			t.Fatalf("AddBuddy(%s, %s): %v", p[0], p[1], err)
		}
	}
	want := map[string][]string{
		"alice": {"bob", "carol"},
		"bob":   {"alice", "dave"},
		"carol": {"alice"},
		"dave":  {"bob"},
	}
	for u, w := range want {
		if got, err := db.Buddies(ctx, u); err != nil || !slices.Equal(got, w) {
			t.Errorf("Buddies(%s) = %v, %v; want %v", u, got, err, w)
		}
	}

	for _, tc := range []struct {
		name, a, b string
		want       error
		mentions   string
	}{
		{"existing", "alice", "bob", ErrBuddyExists, ""},
		{"existing reversed", "bob", "alice", ErrBuddyExists, ""},
		{"self", "alice", "alice", ErrSelfBuddy, ""},
		{"unknown second", "alice", "mallory", ErrNoSuchUser, "mallory"},
		{"unknown first", "mallory", "alice", ErrNoSuchUser, "mallory"},
		{"invalid name", "alice", "Bob", ErrInvalidName, `"Bob"`},
	} {
		err := db.AddBuddy(ctx, tc.a, tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: AddBuddy(%s, %s) = %v, want %v", tc.name, tc.a, tc.b, err, tc.want)
		} else if !strings.Contains(err.Error(), tc.mentions) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.mentions)
		}
	}
	if _, err := db.Buddies(ctx, "mallory"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Buddies(unknown) = %v, want ErrNoSuchUser", err)
	}

	// Deleting works from either side.
	if err := db.DeleteBuddy(ctx, "bob", "alice"); err != nil {
		t.Fatalf("DeleteBuddy: %v", err)
	}
	if err := db.DeleteBuddy(ctx, "alice", "bob"); !errors.Is(err, ErrNoSuchBuddy) {
		t.Fatalf("DeleteBuddy(twice) = %v, want ErrNoSuchBuddy", err)
	}
	if err := db.DeleteBuddy(ctx, "alice", "mallory"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("DeleteBuddy(unknown) = %v, want ErrNoSuchUser", err)
	}
	if got, _ := db.Buddies(ctx, "alice"); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("Buddies(alice) after DeleteBuddy = %v, want [carol]", got)
	}

	// Deleting a user removes its links from everyone.
	if err := db.DeleteUser(ctx, "carol"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if got, _ := db.Buddies(ctx, "alice"); len(got) != 0 {
		t.Fatalf("Buddies(alice) after deleting carol = %v, want none", got)
	}
	var n int
	if err := db.db.QueryRow(`SELECT count(*) FROM buddies WHERE a = 'carol' OR b = 'carol'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d dangling links to carol (%v)", n, err)
	}
	// A re-created carol starts without buddies.
	mustAddUser(t, db, "carol", "pw")
	if got, _ := db.Buddies(ctx, "carol"); len(got) != 0 {
		t.Fatalf("re-created carol has buddies %v", got)
	}
}

func TestUserDBPersistsAcrossReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", UsersFile) // directory created on open
	db, err := OpenUserDB(ctx, path)
	if err != nil {
		t.Fatalf("OpenUserDB: %v", err)
	}
	mustAddUser(t, db, "alice", "secret")
	mustAddUser(t, db, "bob", "secret2")
	if err := db.AddBuddy(ctx, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.AddUser(ctx, "carol", "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddUser after Close = %v, want ErrClosed", err)
	}

	db2 := openTestDB(t, path)
	if err := db2.Authenticate(ctx, "alice", "secret"); err != nil {
		t.Fatalf("Authenticate after reopen: %v", err)
	}
	if got, _ := db2.Buddies(ctx, "bob"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("Buddies(bob) after reopen = %v", got)
	}
}

// TestUserDBSecondWriter is `baton user add` running while the server has
// the database open.
func TestUserDBSecondWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), UsersFile)
	server := openTestDB(t, path)
	cli := openTestDB(t, path)
	mustAddUser(t, server, "alice", "pw")
	mustAddUser(t, cli, "bob", "pw")
	if err := cli.AddBuddy(ctx, "alice", "bob"); err != nil {
		t.Fatalf("AddBuddy from second handle: %v", err)
	}
	if got, err := server.Buddies(ctx, "alice"); err != nil || !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("server sees Buddies(alice) = %v, %v", got, err)
	}
	var mode string
	if err := server.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestUserDBHashes(t *testing.T) {
	t.Parallel()
	db := openTestDB(t, "")
	mustAddUser(t, db, "alice", "same password")
	mustAddUser(t, db, "bob", "same password")
	ha, hb := storedHash(t, db, "alice"), storedHash(t, db, "bob")
	if ha == hb {
		t.Fatal("two users with the same password have the same hash: no salt")
	}
	for _, h := range []string{ha, hb} {
		const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
		if !strings.HasPrefix(h, prefix) {
			t.Fatalf("hash %q does not start with %q", h, prefix)
		}
		f := strings.Split(h, "$")
		salt, err := base64.RawStdEncoding.DecodeString(f[4])
		if err != nil || len(salt) != 16 {
			t.Fatalf("salt %q: %d bytes, %v; want 16", f[4], len(salt), err)
		}
		if strings.Contains(h, "same password") {
			t.Fatal("hash contains the password")
		}
	}
}

func TestUserDBBadNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	for _, tc := range []struct{ name, user string }{
		{"empty", ""},
		{"upper case", "Alice"},
		{"leading dash", "-alice"},
		{"slash", "al/ice"},
		{"space", "al ice"},
		{"too long", strings.Repeat("a", 65)},
		{"non-ascii", "alicé"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for op, err := range map[string]error{
				"AddUser":     db.AddUser(ctx, tc.user, "pw"),
				"DeleteUser":  db.DeleteUser(ctx, tc.user),
				"SetPassword": db.SetPassword(ctx, tc.user, "pw"),
			} {
				if !errors.Is(err, ErrInvalidName) {
					t.Errorf("%s(%q) = %v, want ErrInvalidName", op, tc.user, err)
				} else if !strings.Contains(err.Error(), `"`+tc.user+`"`) {
					t.Errorf("%s error %q does not name %q", op, err, tc.user)
				}
			}
		})
	}
}

func TestUserDBCorruptHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openTestDB(t, "")
	mustAddUser(t, db, "alice", "pw")
	good := storedHash(t, db, "alice")
	for _, tc := range []struct{ name, hash string }{
		{"not phc", "plaintext"},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"wrong version", strings.Replace(good, "v=19", "v=16", 1)},
		{"huge memory", strings.Replace(good, "m=19456", "m=4194304", 1)},
		{"zero time", strings.Replace(good, "t=2", "t=0", 1)},
		{"bad salt", strings.Join(append(strings.Split(good, "$")[:4], "!!", strings.Split(good, "$")[5]), "$")},
		{"short key", good[:len(good)-8]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := parseHash(tc.hash); !errors.Is(err, ErrBadHash) {
				t.Fatalf("parseHash(%q) = %v, want ErrBadHash", tc.hash, err)
			}
		})
	}
	if _, err := db.db.Exec(`UPDATE users SET password = 'garbage' WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	// A corrupt database is an operator problem, not a wrong password.
	if err := db.Authenticate(ctx, "alice", "pw"); !errors.Is(err, ErrBadHash) {
		t.Fatalf("Authenticate with corrupt hash = %v, want ErrBadHash", err)
	}
}

func TestUserDBSchemaFromTheFuture(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), UsersFile)
	db := openTestDB(t, path)
	_ = db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	_ = raw.Close()
	if _, err := OpenUserDB(context.Background(), path); !errors.Is(err, ErrSchema) {
		t.Fatalf("OpenUserDB(newer schema) = %v, want ErrSchema", err)
	}
}

// TestAuthenticateAlwaysHashes checks that a failed login costs an argon2id
// computation whatever the reason, so its timing does not reveal whether
// the user exists: each call must allocate argon2's 19 MiB of memory. Not
// parallel, so no other test's allocations are counted.
func TestAuthenticateAlwaysHashes(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, "")
	mustAddUser(t, db, "alice", "pw")
	for _, tc := range []struct{ name, user, pw string }{
		{"right password", "alice", "pw"},
		{"wrong password", "alice", "nope"},
		{"unknown user", "mallory", "pw"},
		{"invalid name", "Mallory!", "pw"},
		{"empty password", "alice", ""},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_ = db.Authenticate(ctx, tc.user, tc.pw)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got < argonMemoryKiB*1024 {
			t.Errorf("%s: Authenticate allocated %d bytes, want at least argon2's %d: it skipped the hash", tc.name, got, argonMemoryKiB*1024)
		}
	}
}
