package access

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// UsersFile is the user database's file name inside the data directory.
const UsersFile = "users.db"

// schemaVersion is the user database layout this build writes. Bump it with
// a migration step in migrate, never by editing the version-1 statements.
const schemaVersion = 2

// Password hashing: argon2id (RFC 9106) with the OWASP Password Storage
// Cheat Sheet's first recommended configuration: m = 19 MiB, t = 2, p = 1.
// Parameters are stored with each hash (PHC string format), so raising them
// later does not invalidate existing passwords.
const (
	argonMemoryKiB = 19456
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Bounds on parameters read back from a stored hash, so a tampered database
// cannot make Authenticate allocate gigabytes or spin for minutes.
const (
	maxArgonMemoryKiB = 1 << 18 // 256 MiB
	maxArgonTime      = 16
	maxArgonThreads   = 16
)

// argonParams are the cost parameters of one hash.
type argonParams struct {
	memoryKiB uint32
	time      uint32
	threads   uint8
}

func defaultArgonParams() argonParams {
	return argonParams{memoryKiB: argonMemoryKiB, time: argonTime, threads: argonThreads}
}

// UserDB is the access server's user and buddy database: SQLite in WAL mode
// with a busy timeout, so `baton user ...` can change it while the server
// runs. It is safe for concurrent use.
type UserDB struct {
	db     *sql.DB
	params argonParams
	// hashSlots bounds concurrent argon2id computations: each takes 19 MiB
	// and a core, so a burst of logins (or a password-guessing flood) queues
	// here instead of exhausting memory.
	hashSlots chan struct{}
	// dummySalt is hashed against when the user is unknown, so a failed
	// login costs the same whether or not the user exists.
	dummySalt []byte
	closed    atomic.Bool
}

// OpenUserDB opens (creating if needed) the user database at path. The file
// and its directory are created private to the owner: they hold password
// hashes.
func OpenUserDB(ctx context.Context, path string) (*UserDB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("access: open user database %q: path must be non-empty and contain no '?' or '#'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("access: open user database: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("access: open user database: %w", err)
	}
	_ = f.Close()
	// busy_timeout: another process (the CLI) may hold the write lock for a
	// moment. _txlock=immediate takes the write lock at BEGIN, so two
	// writers queue on busy_timeout instead of failing with SQLITE_BUSY when
	// a read transaction tries to upgrade.
	dsn := "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("access: open user database %s: %w", path, err)
	}
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+)
	u := &UserDB{
		db:        db,
		params:    defaultArgonParams(),
		hashSlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		dummySalt: salt,
	}
	if err := u.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("access: open user database %s: %w", path, err)
	}
	return u, nil
}

func (u *UserDB) migrate(ctx context.Context) error {
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		v = 0
	case err != nil:
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("%w: version %d, this build knows up to %d", ErrSchema, v, schemaVersion)
	}
	if v == schemaVersion {
		return tx.Commit()
	}
	if v < 1 {
		if err := migrateV1(ctx, tx); err != nil {
			return err
		}
	}
	// Version 2: gateway credentials (gateways.go).
	if err := migrateV2(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// migrateV1 creates the version-1 layout: users and buddies.
func migrateV1(ctx context.Context, tx *sql.Tx) error {
	// Version 1. A buddy link is stored once, with a < b, which makes it
	// symmetric by construction.
	for _, stmt := range []string{
		`CREATE TABLE users (
			name         TEXT PRIMARY KEY,
			password     TEXT NOT NULL,
			created_unix INTEGER NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE buddies (
			a TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			b TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			PRIMARY KEY (a, b),
			CHECK (a < b)
		) WITHOUT ROWID`,
		`CREATE INDEX buddies_b ON buddies (b)`,
		`DELETE FROM schema_version`,
		`INSERT INTO schema_version (version) VALUES (1)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database. It is idempotent.
func (u *UserDB) Close() error {
	if u.closed.Swap(true) {
		return nil
	}
	if err := u.db.Close(); err != nil {
		return fmt.Errorf("access: close user database: %w", err)
	}
	return nil
}

func (u *UserDB) check(op string) error {
	if u.closed.Load() {
		return fmt.Errorf("access: %s: user database %w", op, ErrClosed)
	}
	return nil
}

func checkName(op, name string) error {
	if !pki.ValidName(name) {
		return fmt.Errorf("access: %s: %w %q: want 1-64 of [a-z0-9._-], starting with a letter or digit", op, ErrInvalidName, name)
	}
	return nil
}

func checkPassword(op, password string) error {
	if password == "" || len(password) > wire.MaxPassword {
		return fmt.Errorf("access: %s: %w: must be 1-%d bytes", op, ErrInvalidPassword, wire.MaxPassword)
	}
	return nil
}

// AddUser creates a user. It fails with ErrUserExists if the name is taken.
func (u *UserDB) AddUser(ctx context.Context, name, password string) error {
	op := "add user " + name
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("add user", name); err != nil {
		return err
	}
	if err := checkPassword(op, password); err != nil {
		return err
	}
	if ok, err := u.HasUser(ctx, name); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("access: %s: %w", op, ErrUserExists)
	}
	h, err := u.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	res, err := u.db.ExecContext(ctx,
		`INSERT INTO users (name, password, created_unix) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, h, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrUserExists)
	}
	return nil
}

// AddSIPOnlyUser creates a user without a password of its own: a SIP-only
// user, whose only devices are SIP phones behind a gateway. It cannot log
// in with a password (Authenticate fails as for an unknown user, after the
// same work); its devices log in only through a gateway credential it is
// delegated to, and the phone's own secret is the SIP digest HA1 at that
// gateway. Such a user costs no argon2id hash, so ten thousand of them are
// created in seconds (ImportUsers). SetPassword gives it a password and
// makes it an ordinary user. The password column holds "" for it.
func (u *UserDB) AddSIPOnlyUser(ctx context.Context, name string) error {
	op := "add SIP-only user " + name
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("add user", name); err != nil {
		return err
	}
	res, err := u.db.ExecContext(ctx,
		`INSERT INTO users (name, password, created_unix) VALUES (?, '', ?) ON CONFLICT (name) DO NOTHING`,
		name, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrUserExists)
	}
	return nil
}

// UserInfo is one user as Users reports it.
type UserInfo struct {
	Name string `json:"name"`
	// SIPOnly is set for a user without a password (AddSIPOnlyUser).
	SIPOnly bool `json:"sip_only,omitempty"`
}

// Users returns every user, sorted by name, with its kind.
func (u *UserDB) Users(ctx context.Context) ([]UserInfo, error) {
	const op = "list users"
	if err := u.check(op); err != nil {
		return nil, err
	}
	rows, err := u.db.QueryContext(ctx, `SELECT name, password = '' FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = rows.Close() }()
	var out []UserInfo
	for rows.Next() {
		var ui UserInfo
		if err := rows.Scan(&ui.Name, &ui.SIPOnly); err != nil {
			return nil, fmt.Errorf("access: %s: %w", op, err)
		}
		out = append(out, ui)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	return out, nil
}

// HasUser reports whether name is a user.
func (u *UserDB) HasUser(ctx context.Context, name string) (bool, error) {
	if err := u.check("look up user " + name); err != nil {
		return false, err
	}
	var one int
	switch err := u.db.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, name).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("access: look up user %s: %w", name, err)
	}
	return true, nil
}

// DeleteUser removes a user and every buddy link it has.
func (u *UserDB) DeleteUser(ctx context.Context, name string) error {
	op := "delete user " + name
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("delete user", name); err != nil {
		return err
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	// Explicit, not only ON DELETE CASCADE: a database opened by a tool
	// without foreign_keys=1 must not be left with dangling links.
	if _, err := tx.ExecContext(ctx, `DELETE FROM buddies WHERE a = ? OR b = ?`, name, name); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM gateway_users WHERE user = ?`, name); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrNoSuchUser)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	return nil
}

// SetPassword replaces a user's password.
func (u *UserDB) SetPassword(ctx context.Context, name, password string) error {
	op := "set password of " + name
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("set password", name); err != nil {
		return err
	}
	if err := checkPassword(op, password); err != nil {
		return err
	}
	h, err := u.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	res, err := u.db.ExecContext(ctx, `UPDATE users SET password = ? WHERE name = ?`, h, name)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrNoSuchUser)
	}
	return nil
}

// ListUsers returns every user name, sorted.
func (u *UserDB) ListUsers(ctx context.Context) ([]string, error) {
	if err := u.check("list users"); err != nil {
		return nil, err
	}
	return u.queryStrings(ctx, "list users", `SELECT name FROM users ORDER BY name`)
}

// Authenticate checks name's password. An unknown user and a wrong password
// both return ErrAuthFailed after the same amount of work: for an unknown
// user a password is hashed anyway, with the same parameters.
func (u *UserDB) Authenticate(ctx context.Context, name, password string) error {
	op := "authenticate " + name
	if err := u.check(op); err != nil {
		return err
	}
	var stored string
	err := u.db.QueryRowContext(ctx, `SELECT password FROM users WHERE name = ?`, name).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		stored = ""
	case err != nil:
		return fmt.Errorf("access: %s: %w", op, err)
	}
	// A SIP-only user (stored "") is hashed against like an unknown one:
	// it has no password, and the answer takes the same time.
	p, salt, want := u.params, u.dummySalt, []byte(nil)
	if stored != "" {
		if p, salt, want, err = parseHash(stored); err != nil {
			return fmt.Errorf("access: %s: %w", op, err)
		}
	}
	got, err := u.derive(ctx, password, salt, p, argonKeyLen)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if stored == "" || password == "" || subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("access: %s: %w", op, ErrAuthFailed)
	}
	return nil
}

// AddBuddy links a and b as buddies; the link is symmetric, each sees the
// other. Both must be users and distinct; an existing link is ErrBuddyExists.
func (u *UserDB) AddBuddy(ctx context.Context, a, b string) error {
	op := "add buddy " + a + " <-> " + b
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("add buddy", a); err != nil {
		return err
	}
	if err := checkName("add buddy", b); err != nil {
		return err
	}
	if a == b {
		return fmt.Errorf("access: %s: %w", op, ErrSelfBuddy)
	}
	lo, hi := min(a, b), max(a, b)
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, n := range []string{a, b} {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, n).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("access: %s: %w: %s", op, ErrNoSuchUser, n)
		case err != nil:
			return fmt.Errorf("access: %s: %w", op, err)
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO buddies (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING`, lo, hi)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrBuddyExists)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	return nil
}

// DeleteBuddy removes the link between a and b (in either order).
func (u *UserDB) DeleteBuddy(ctx context.Context, a, b string) error {
	op := "delete buddy " + a + " <-> " + b
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("delete buddy", a); err != nil {
		return err
	}
	if err := checkName("delete buddy", b); err != nil {
		return err
	}
	res, err := u.db.ExecContext(ctx, `DELETE FROM buddies WHERE a = ? AND b = ?`, min(a, b), max(a, b))
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	for _, n := range []string{a, b} {
		if ok, err := u.HasUser(ctx, n); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("access: %s: %w: %s", op, ErrNoSuchUser, n)
		}
	}
	return fmt.Errorf("access: %s: %w", op, ErrNoSuchBuddy)
}

// Buddies returns user's buddies, sorted. An unknown user is ErrNoSuchUser.
func (u *UserDB) Buddies(ctx context.Context, user string) ([]string, error) {
	op := "list buddies of " + user
	if err := u.check(op); err != nil {
		return nil, err
	}
	if ok, err := u.HasUser(ctx, user); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("access: %s: %w", op, ErrNoSuchUser)
	}
	return u.queryStrings(ctx, op,
		`SELECT b FROM buddies WHERE a = ?1 UNION ALL SELECT a FROM buddies WHERE b = ?1 ORDER BY 1`, user)
}

func (u *UserDB) queryStrings(ctx context.Context, op, query string, args ...any) ([]string, error) {
	rows, err := u.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("access: %s: %w", op, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	return out, nil
}

// hash returns the PHC string of password under a fresh random salt:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, base64 without padding.
func (u *UserDB) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt)
	key, err := u.derive(ctx, password, salt, u.params, argonKeyLen)
	if err != nil {
		return "", err
	}
	return encodeHash(u.params, salt, key), nil
}

// derive runs argon2id in one of the bounded hash slots.
func (u *UserDB) derive(ctx context.Context, password string, salt []byte, p argonParams, keyLen uint32) ([]byte, error) {
	select {
	case u.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-u.hashSlots }()
	return argon2.IDKey([]byte(password), salt, p.time, p.memoryKiB, p.threads, keyLen), nil
}

func encodeHash(p argonParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memoryKiB, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parseHash reads a PHC argon2id string written by encodeHash.
func parseHash(s string) (argonParams, []byte, []byte, error) {
	var p argonParams
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: not an argon2id PHC string", ErrBadHash)
	}
	var v int
	if _, err := fmt.Sscanf(f[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("%w: argon2 version %q", ErrBadHash, f[2])
	}
	var threads uint32
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.memoryKiB, &p.time, &threads); err != nil {
		return p, nil, nil, fmt.Errorf("%w: parameters %q", ErrBadHash, f[3])
	}
	if p.memoryKiB < 8 || p.memoryKiB > maxArgonMemoryKiB || p.time < 1 || p.time > maxArgonTime ||
		threads < 1 || threads > maxArgonThreads || p.memoryKiB < 8*threads {
		return p, nil, nil, fmt.Errorf("%w: parameters %q out of range", ErrBadHash, f[3])
	}
	p.threads = uint8(threads)
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("%w: salt", ErrBadHash)
	}
	key, err := b64.DecodeString(f[5])
	if err != nil || len(key) != argonKeyLen {
		return p, nil, nil, fmt.Errorf("%w: key", ErrBadHash)
	}
	return p, salt, key, nil
}
