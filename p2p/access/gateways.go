package access

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Gateway credentials (issue 8 §1). A gateway (`baton gateway`) logs the
// SIP devices it bridges in with one credential the access server issued
// to it, instead of each user's password. The credential is a name and a
// secret (stored as an argon2id hash, like user passwords) and the list of
// users delegated to it: the gateway may act only for those users'
// devices, and any other login through it is refused with ErrNotDelegated.

// GatewaySecretBytes is the size of a secret IssueGateway generates
// (before base64): 256 bits.
const GatewaySecretBytes = 32

// GatewayInfo is one gateway credential as ListGateways reports it.
type GatewayInfo struct {
	Name    string    `json:"name"`
	Users   []string  `json:"users"`
	Created time.Time `json:"created"`
}

// migrateV2 adds the gateway tables. A delegation row goes with its user
// and with its gateway.
func migrateV2(ctx context.Context, tx *sql.Tx) error {
	for _, stmt := range []string{
		`CREATE TABLE gateways (
			name         TEXT PRIMARY KEY,
			secret       TEXT NOT NULL,
			created_unix INTEGER NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE gateway_users (
			gateway TEXT NOT NULL REFERENCES gateways(name) ON DELETE CASCADE,
			user    TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			PRIMARY KEY (gateway, user)
		) WITHOUT ROWID`,
		`DELETE FROM schema_version`,
		`INSERT INTO schema_version (version) VALUES (2)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// NewGatewaySecret returns a fresh random secret: 32 bytes, base64url.
func NewGatewaySecret() string {
	b := make([]byte, GatewaySecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AddGateway creates a gateway credential with secret, delegated the given
// users (each must exist; none is allowed). ErrGatewayExists if the name
// is taken.
func (u *UserDB) AddGateway(ctx context.Context, name, secret string, users []string) error {
	op := "add gateway " + name
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("add gateway", name); err != nil {
		return err
	}
	if err := checkPassword(op+": secret", secret); err != nil {
		return err
	}
	// users may be empty: users are then delegated later (Delegate, or
	// ImportUsers with a gateway column).
	for _, user := range users {
		if err := checkName(op+": user", user); err != nil {
			return err
		}
	}
	h, err := u.hash(ctx, secret)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx,
		`INSERT INTO gateways (name, secret, created_unix) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, h, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrGatewayExists)
	}
	for _, user := range users {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, user).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("access: %s: %w: %s", op, ErrNoSuchUser, user)
		case err != nil:
			return fmt.Errorf("access: %s: %w", op, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gateway_users (gateway, user) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, user); err != nil {
			return fmt.Errorf("access: %s: %w", op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	return nil
}

// DeleteGateway removes a gateway credential and its delegations. Devices
// it has online stay online until their session ends; the next login
// through it is refused.
func (u *UserDB) DeleteGateway(ctx context.Context, name string) error {
	op := "delete gateway " + name
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName("delete gateway", name); err != nil {
		return err
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM gateway_users WHERE gateway = ?`, name); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM gateways WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("access: %s: %w", op, ErrNoSuchGateway)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	return nil
}

// ListGateways returns every gateway credential with its delegated users,
// sorted by name.
func (u *UserDB) ListGateways(ctx context.Context) ([]GatewayInfo, error) {
	const op = "list gateways"
	if err := u.check(op); err != nil {
		return nil, err
	}
	rows, err := u.db.QueryContext(ctx, `SELECT name, created_unix FROM gateways ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	var out []GatewayInfo
	for rows.Next() {
		var g GatewayInfo
		var created int64
		if err := rows.Scan(&g.Name, &created); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("access: %s: %w", op, err)
		}
		g.Created = time.Unix(created, 0)
		out = append(out, g)
	}
	err = errors.Join(rows.Err(), rows.Close())
	if err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	for i := range out {
		if out[i].Users, err = u.GatewayUsers(ctx, out[i].Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// GatewayUsers returns the users delegated to gateway, sorted.
func (u *UserDB) GatewayUsers(ctx context.Context, gateway string) ([]string, error) {
	op := "list users of gateway " + gateway
	if err := u.check(op); err != nil {
		return nil, err
	}
	users, err := u.queryStrings(ctx, op, `SELECT user FROM gateway_users WHERE gateway = ? ORDER BY user`, gateway)
	if users == nil && err == nil {
		users = []string{}
	}
	return users, err
}

// AuthenticateGateway checks a gateway's secret and returns the users
// delegated to it. An unknown gateway and a wrong secret both return
// ErrAuthFailed after the same argon2 work, as Authenticate does for users.
func (u *UserDB) AuthenticateGateway(ctx context.Context, name, secret string) ([]string, error) {
	op := "authenticate gateway " + name
	if err := u.check(op); err != nil {
		return nil, err
	}
	var stored string
	err := u.db.QueryRowContext(ctx, `SELECT secret FROM gateways WHERE name = ?`, name).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		stored = ""
	case err != nil:
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	p, salt, want := u.params, u.dummySalt, []byte(nil)
	if stored != "" {
		if p, salt, want, err = parseHash(stored); err != nil {
			return nil, fmt.Errorf("access: %s: %w", op, err)
		}
	}
	got, err := u.derive(ctx, secret, salt, p, argonKeyLen)
	if err != nil {
		return nil, fmt.Errorf("access: %s: %w", op, err)
	}
	if stored == "" || secret == "" || subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, fmt.Errorf("access: %s: %w", op, ErrAuthFailed)
	}
	return u.GatewayUsers(ctx, name)
}

// NotDelegatedError is a login through a gateway for a user not delegated
// to it. It matches ErrNotDelegated.
type NotDelegatedError struct {
	Gateway, User, Device string
}

func (e *NotDelegatedError) Error() string {
	return fmt.Sprintf("gateway %s may not log in %s/%s: user %s is not delegated to it (baton gateway delegate %s %s)",
		e.Gateway, e.User, e.Device, e.User, e.Gateway, e.User)
}

// Unwrap makes errors.Is(err, ErrNotDelegated) hold.
func (e *NotDelegatedError) Unwrap() error { return ErrNotDelegated }

// Delegate adds users to the users gateway may log in (each must exist;
// one already delegated is left as it is).
func (u *UserDB) Delegate(ctx context.Context, gateway string, users []string) error {
	return u.changeDelegation(ctx, "delegate to gateway "+gateway, gateway, users, true)
}

// Undelegate removes users from the users gateway may log in. Their
// devices online through it lose their credential at the next renewal.
func (u *UserDB) Undelegate(ctx context.Context, gateway string, users []string) error {
	return u.changeDelegation(ctx, "undelegate from gateway "+gateway, gateway, users, false)
}

func (u *UserDB) changeDelegation(ctx context.Context, op, gateway string, users []string, add bool) error {
	if err := u.check(op); err != nil {
		return err
	}
	if err := checkName(op, gateway); err != nil {
		return err
	}
	if len(users) == 0 {
		return fmt.Errorf("access: %s: %w: name at least one user", op, ErrNoSuchUser)
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM gateways WHERE name = ?`, gateway).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("access: %s: %w", op, ErrNoSuchGateway)
	case err != nil:
		return fmt.Errorf("access: %s: %w", op, err)
	}
	for _, user := range users {
		if err := checkName(op, user); err != nil {
			return err
		}
		if !add {
			if _, err := tx.ExecContext(ctx, `DELETE FROM gateway_users WHERE gateway = ? AND user = ?`, gateway, user); err != nil {
				return fmt.Errorf("access: %s: %w", op, err)
			}
			continue
		}
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, user).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("access: %s: %w: %s", op, ErrNoSuchUser, user)
		case err != nil:
			return fmt.Errorf("access: %s: %w", op, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gateway_users (gateway, user) VALUES (?, ?) ON CONFLICT DO NOTHING`, gateway, user); err != nil {
			return fmt.Errorf("access: %s: %w", op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("access: %s: %w", op, err)
	}
	return nil
}

// IsDelegated reports whether user is delegated to gateway: one indexed
// lookup, whatever the number of users delegated.
func (u *UserDB) IsDelegated(ctx context.Context, gateway, user string) (bool, error) {
	op := "look up delegation of " + user + " to gateway " + gateway
	if err := u.check(op); err != nil {
		return false, err
	}
	var one int
	switch err := u.db.QueryRowContext(ctx, `SELECT 1 FROM gateway_users WHERE gateway = ? AND user = ?`, gateway, user).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("access: %s: %w", op, err)
	}
	return true, nil
}
