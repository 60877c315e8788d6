package access

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-voice/baton/p2p/pki"
	"github.com/baton-voice/baton/p2p/wire"
)

// Bulk provisioning (issue 8 §7): `baton user import FILE` creates many
// users at once, for example the 10,000 users behind a gateway's desk
// phones. The file is CSV (RFC 4180) with a header line naming its columns:
//
//	user      required: the user name
//	password  optional: the user's P2P password; an empty cell makes a
//	          SIP-only user (see AddSIPOnlyUser)
//	gateway   optional: a gateway credential (it must exist) the user is
//	          delegated to
//	buddies   optional: buddies, separated by spaces; each is a user of
//	          the file or of the database
//
// The import is all or nothing: every line is checked first, every problem
// is reported with its line and column, and only a file with none is
// written, in one transaction.

// ImportColumns are the columns an import file may have, in the order
// `baton user import` documents them.
var importColumns = []string{"user", "password", "gateway", "buddies"}

// maxImportProblems bounds how many problems one ImportError lists; the
// rest are counted.
const maxImportProblems = 20

// ImportUser is one user to import: one data line of the file.
type ImportUser struct {
	// Line is the line of the file it came from (1 is the header), for
	// error messages; 0 when the user did not come from a file.
	Line int
	Name string
	// Password is the user's P2P password; "" makes a SIP-only user.
	Password string
	// Gateway is the gateway credential the user is delegated to ("" =
	// none).
	Gateway string
	Buddies []string
}

// ImportProblem is one thing wrong with an import, at a line and column.
type ImportProblem struct {
	Line  int
	Field string
	// Err says what is wrong; it wraps a sentinel (ErrInvalidName,
	// ErrUserExists, ErrNoSuchGateway...) where there is one.
	Err error
}

func (p ImportProblem) Error() string {
	switch {
	case p.Line > 0 && p.Field != "":
		return fmt.Sprintf("line %d, field %s: %v", p.Line, p.Field, p.Err)
	case p.Line > 0:
		return fmt.Sprintf("line %d: %v", p.Line, p.Err)
	}
	return p.Err.Error()
}

func (p ImportProblem) Unwrap() error { return p.Err }

// ImportError is a refused import: nothing was written. It lists up to
// maxImportProblems problems and counts the others. It matches ErrImport,
// and errors.Is finds the sentinels of its problems too.
type ImportError struct {
	Source   string // the file name, for the message
	Problems []ImportProblem
	More     int // problems found beyond Problems
}

func (e *ImportError) Error() string {
	var b strings.Builder
	n := len(e.Problems) + e.More
	fmt.Fprintf(&b, "import %s: %d problem", e.Source, n)
	if n != 1 {
		b.WriteString("s")
	}
	b.WriteString(", nothing imported")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.More)
	}
	return b.String()
}

// Unwrap returns ErrImport and every listed problem.
func (e *ImportError) Unwrap() []error {
	out := []error{ErrImport}
	for _, p := range e.Problems {
		out = append(out, p)
	}
	return out
}

// problemList collects an import's problems.
type problemList struct {
	list []ImportProblem
	more int
}

func (l *problemList) add(line int, field string, err error) {
	if len(l.list) < maxImportProblems {
		l.list = append(l.list, ImportProblem{Line: line, Field: field, Err: err})
		return
	}
	l.more++
}

func (l *problemList) err(source string) error {
	if len(l.list) == 0 {
		return nil
	}
	return &ImportError{Source: source, Problems: l.list, More: l.more}
}

// ParseUserCSV reads an import file (see the package comment above). It
// checks what the file alone can tell: the header, the number of cells,
// names, password lengths and users listed twice. source names the file
// in errors. Any problem is an *ImportError; the users are returned only
// when there is none.
func ParseUserCSV(r io.Reader, source string) ([]ImportUser, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.ReuseRecord = false
	var probs problemList
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		probs.add(0, "", errors.New("empty file: want a header line such as \"user,password,gateway,buddies\""))
		return nil, probs.err(source)
	}
	if err != nil {
		probs.add(csvLine(err), "", csvCause(err))
		return nil, probs.err(source)
	}
	headerLine, _ := cr.FieldPos(0)
	col := map[string]int{}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a spreadsheet's UTF-8 byte order mark
		}
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case !isImportColumn(h):
			probs.add(headerLine, "", fmt.Errorf("unknown column %q in the header: want %s", h, strings.Join(importColumns, ", ")))
		case hasKey(col, h):
			probs.add(headerLine, "", fmt.Errorf("column %q named twice in the header", h))
		default:
			col[h] = i
		}
	}
	if _, ok := col["user"]; !ok {
		probs.add(headerLine, "", errors.New("no \"user\" column in the header"))
	}
	if len(probs.list) > 0 {
		return nil, probs.err(source)
	}
	cell := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return rec[i]
		}
		return ""
	}
	var out []ImportUser
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A line with the wrong number of cells can be skipped; a
			// broken quote ends the file for the reader.
			probs.add(csvLine(err), "", csvCause(err))
			if errors.Is(err, csv.ErrFieldCount) {
				continue
			}
			break
		}
		line, _ := cr.FieldPos(0)
		u := ImportUser{
			Line:     line,
			Name:     strings.TrimSpace(cell(rec, "user")),
			Password: cell(rec, "password"), // as written: spaces may be part of it
			Gateway:  strings.TrimSpace(cell(rec, "gateway")),
			Buddies:  strings.Fields(cell(rec, "buddies")),
		}
		checkImportUser(&probs, u)
		if first, dup := seen[u.Name]; dup && u.Name != "" {
			probs.add(line, "user", fmt.Errorf("%w: %s is also on line %d", ErrUserExists, u.Name, first))
		} else {
			seen[u.Name] = line
		}
		out = append(out, u)
	}
	if err := probs.err(source); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		probs.add(headerLine, "", errors.New("no users after the header line"))
		return nil, probs.err(source)
	}
	return out, nil
}

func isImportColumn(h string) bool {
	for _, c := range importColumns {
		if c == h {
			return true
		}
	}
	return false
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

// csvLine and csvCause split an encoding/csv error into its line and its
// reason, so the message reads like the others.
func csvLine(err error) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return 0
}

func csvCause(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%w (column %d)", pe.Err, pe.Column)
	}
	return err
}

// checkImportUser checks what one user's own cells can tell.
func checkImportUser(probs *problemList, u ImportUser) {
	if !pki.ValidName(u.Name) {
		probs.add(u.Line, "user", fmt.Errorf("%w %q: want 1-64 of [a-z0-9._-], starting with a letter or digit", ErrInvalidName, u.Name))
	}
	if len(u.Password) > wire.MaxPassword {
		probs.add(u.Line, "password", fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidPassword, len(u.Password), wire.MaxPassword))
	} else if u.Password != "" && strings.TrimSpace(u.Password) == "" {
		probs.add(u.Line, "password", fmt.Errorf("%w: only spaces (leave the cell empty for a SIP-only user)", ErrInvalidPassword))
	}
	if u.Gateway != "" && !pki.ValidName(u.Gateway) {
		probs.add(u.Line, "gateway", fmt.Errorf("%w %q", ErrInvalidName, u.Gateway))
	}
	for _, b := range u.Buddies {
		switch {
		case !pki.ValidName(b):
			probs.add(u.Line, "buddies", fmt.Errorf("%w %q", ErrInvalidName, b))
		case b == u.Name:
			probs.add(u.Line, "buddies", ErrSelfBuddy)
		}
	}
}

// ImportStats says what an import wrote.
type ImportStats struct {
	Users       int // users created
	SIPOnly     int // of which SIP-only (no password)
	Delegations int // users delegated to a gateway
	BuddyLinks  int // buddy links created (a link listed on both sides counts once)
}

// rowQuerier is what both *sql.DB and *sql.Tx offer.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ImportUsers creates users in one transaction: all of them, with their
// delegations and buddy links, or none (an *ImportError naming each
// problem's line and field). A user that exists already, a gateway that
// does not, or a buddy that is neither in users nor in the database is a
// problem. Passwords are hashed (argon2id, in parallel within the hash
// slots) before the transaction; SIP-only users cost no hash at all.
// source names the file in errors.
func (u *UserDB) ImportUsers(ctx context.Context, users []ImportUser, source string) (ImportStats, error) {
	op := "import users from " + source
	if err := u.check(op); err != nil {
		return ImportStats{}, err
	}
	var probs problemList
	seen := map[string]int{}
	for _, usr := range users {
		checkImportUser(&probs, usr)
		if first, dup := seen[usr.Name]; dup {
			probs.add(usr.Line, "user", fmt.Errorf("%w: %s is also on line %d", ErrUserExists, usr.Name, first))
		}
		seen[usr.Name] = usr.Line
	}
	if err := probs.err(source); err != nil {
		return ImportStats{}, err
	}
	// A first check against the database before the (slow) hashing; the
	// transaction checks again, since the database may change meanwhile.
	if err := u.checkImport(ctx, u.db, users, seen, source); err != nil {
		return ImportStats{}, err
	}
	hashes, err := u.hashAll(ctx, users)
	if err != nil {
		return ImportStats{}, fmt.Errorf("access: %s: %w", op, err)
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return ImportStats{}, fmt.Errorf("access: %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := u.checkImport(ctx, tx, users, seen, source); err != nil {
		return ImportStats{}, err
	}
	st, err := insertImport(ctx, tx, users, hashes)
	if err != nil {
		return ImportStats{}, fmt.Errorf("access: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return ImportStats{}, fmt.Errorf("access: %s: %w", op, err)
	}
	return st, nil
}

// checkImport checks users against the database: new names, existing
// gateways, buddies that exist (in the database or in the import).
func (u *UserDB) checkImport(ctx context.Context, q rowQuerier, users []ImportUser, inFile map[string]int, source string) error {
	var probs problemList
	exists := func(query, name string) (bool, error) {
		var one int
		switch err := q.QueryRowContext(ctx, query, name).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("access: import users from %s: %w", source, err)
		}
		return true, nil
	}
	const userQ, gwQ = `SELECT 1 FROM users WHERE name = ?`, `SELECT 1 FROM gateways WHERE name = ?`
	gateways := map[string]bool{}
	dbUsers := map[string]bool{}
	for _, usr := range users {
		ok, err := exists(userQ, usr.Name)
		if err != nil {
			return err
		}
		if ok {
			probs.add(usr.Line, "user", fmt.Errorf("%w: %s", ErrUserExists, usr.Name))
		}
		if g := usr.Gateway; g != "" {
			known, checked := gateways[g]
			if !checked {
				if known, err = exists(gwQ, g); err != nil {
					return err
				}
				gateways[g] = known
			}
			if !known {
				probs.add(usr.Line, "gateway", fmt.Errorf("%w: %s (create it first: baton gateway add %s)", ErrNoSuchGateway, g, g))
			}
		}
		for _, b := range usr.Buddies {
			if _, ok := inFile[b]; ok {
				continue
			}
			known, checked := dbUsers[b]
			if !checked {
				if known, err = exists(userQ, b); err != nil {
					return err
				}
				dbUsers[b] = known
			}
			if !known {
				probs.add(usr.Line, "buddies", fmt.Errorf("%w: %s (neither in the file nor in the database)", ErrNoSuchUser, b))
			}
		}
	}
	return probs.err(source)
}

// hashAll hashes every non-empty password, as many at a time as there are
// hash slots; hashes[i] is "" for a SIP-only user.
func (u *UserDB) hashAll(ctx context.Context, users []ImportUser) ([]string, error) {
	hashes := make([]string, len(users))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range cap(u.hashSlots) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				h, err := u.hash(ctx, users[i].Password)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					continue
				}
				hashes[i] = h
			}
		}()
	}
feed:
	for i := range users {
		if users[i].Password == "" {
			continue
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return hashes, ctx.Err()
}

// insertImport writes checked users inside tx.
func insertImport(ctx context.Context, tx *sql.Tx, users []ImportUser, hashes []string) (ImportStats, error) {
	var st ImportStats
	insUser, err := tx.PrepareContext(ctx, `INSERT INTO users (name, password, created_unix) VALUES (?, ?, ?)`)
	if err != nil {
		return st, err
	}
	defer insUser.Close()
	insGW, err := tx.PrepareContext(ctx, `INSERT INTO gateway_users (gateway, user) VALUES (?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return st, err
	}
	defer insGW.Close()
	insBuddy, err := tx.PrepareContext(ctx, `INSERT INTO buddies (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return st, err
	}
	defer insBuddy.Close()
	now := time.Now().Unix()
	for i, usr := range users {
		if _, err := insUser.ExecContext(ctx, usr.Name, hashes[i], now); err != nil {
			return st, fmt.Errorf("line %d: %w", usr.Line, err)
		}
		st.Users++
		if hashes[i] == "" {
			st.SIPOnly++
		}
	}
	// Delegations and links after every user exists (buddies may point
	// forward in the file).
	for _, usr := range users {
		if usr.Gateway != "" {
			if _, err := insGW.ExecContext(ctx, usr.Gateway, usr.Name); err != nil {
				return st, fmt.Errorf("line %d: %w", usr.Line, err)
			}
			st.Delegations++
		}
		for _, b := range usr.Buddies {
			res, err := insBuddy.ExecContext(ctx, min(usr.Name, b), max(usr.Name, b))
			if err != nil {
				return st, fmt.Errorf("line %d: %w", usr.Line, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				st.BuddyLinks++
			}
		}
	}
	return st, nil
}

// String is the one-line summary `baton user import` prints.
func (s ImportStats) String() string {
	return "imported " + strconv.Itoa(s.Users) + " users (" + strconv.Itoa(s.SIPOnly) + " SIP-only), " +
		strconv.Itoa(s.Delegations) + " delegated to a gateway, " + strconv.Itoa(s.BuddyLinks) + " buddy links"
}
