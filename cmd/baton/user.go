package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/access"
)

// UsersDBFile is the user database's name inside the data directory.
const usersDBFile = "users.db"

// openUsers opens the user database. Only `user add` may create it: any
// other command on a data directory without one is most likely a mistyped
// --data-dir, and says so instead of working on a new empty database.
func openUsers(ctx context.Context, cmd *cobra.Command, create bool) (*access.UserDB, error) {
	cfg, err := config.LoadUser(source(cmd))
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.DataDir, usersDBFile)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no user database at %s (is --data-dir right? \"baton user add\" creates it): %w", path, err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return access.OpenUserDB(ctx, path)
}

// readPassword reads a password from the --password-file, or else the first
// line of standard input. Surrounding whitespace and the newline are
// dropped; an empty password is an error.
func readPassword(cmd *cobra.Command, stdin io.Reader) (string, error) {
	path, _ := cmd.Flags().GetString("password-file")
	var raw string
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		raw = string(b)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		raw = line
	}
	pw := strings.TrimSpace(raw)
	if pw == "" {
		return "", errors.New("empty password: give --password-file FILE or the password on standard input")
	}
	return pw, nil
}

// dbRun is the RunE of a user database command: it opens the database
// (creating it only when create is set), reads the password when withPW is
// set, runs do and prints what do returns.
func dbRun(create, withPW bool, do func(ctx context.Context, db *access.UserDB, args []string, pw string) (string, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var pw string
		if withPW {
			var err error
			if pw, err = readPassword(cmd, cmd.InOrStdin()); err != nil {
				return err
			}
		}
		db, err := openUsers(cmd.Context(), cmd, create)
		if err != nil {
			return err
		}
		defer db.Close()
		out, err := do(cmd.Context(), db, args, pw)
		if err != nil {
			return err
		}
		_, err = io.WriteString(cmd.OutOrStdout(), out)
		return err
	}
}

func newUserCmd() *cobra.Command {
	user := &cobra.Command{
		Use:   "user",
		Short: "Manage the access server's users (add, import, del, passwd, list)",
	}
	config.UserFlags(user.PersistentFlags())
	withPW := dbRun(true, true, func(ctx context.Context, db *access.UserDB, args []string, pw string) (string, error) {
		return fmt.Sprintf("user %s added\n", args[0]), db.AddUser(ctx, args[0], pw)
	})
	sipOnly := dbRun(true, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
		return fmt.Sprintf("user %s added (SIP-only: logs in only through a gateway it is delegated to)\n", args[0]), db.AddSIPOnlyUser(ctx, args[0])
	})
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user; the password comes from --password-file or standard input (none with --sip-only)",
		Long: `Add a user. Its P2P password comes from --password-file or the first line
of standard input, and is stored as an argon2id hash.

With --sip-only the user has no password: it cannot log in itself, and its
devices (SIP phones) log in only through a gateway credential it is
delegated to ("baton gateway delegate GW NAME"); the phone's secret is its
digest HA1 at the gateway. Such a user costs no password hash. "baton user
passwd" later gives it a password and makes it an ordinary user.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if only, _ := cmd.Flags().GetBool("sip-only"); only {
				if cmd.Flags().Changed("password-file") {
					return errors.New("user add: --sip-only users have no password: leave out --password-file")
				}
				return sipOnly(cmd, args)
			}
			return withPW(cmd, args)
		},
	}
	add.Flags().String("password-file", "", "read the password from this `file`")
	add.Flags().Bool("sip-only", false, "no password: the user logs in only through a gateway it is delegated to")
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Add many users from a CSV file, all or none (\"-\" reads standard input)",
		Long: `Add the users of a CSV file (RFC 4180) in one transaction. The first line
names the columns, in any order:

  user      required: the user name
  password  optional: the P2P password; an empty cell makes a SIP-only user
            (see "baton user add --sip-only")
  gateway   optional: a gateway credential, which must exist ("baton gateway
            add NAME"), the user is delegated to
  buddies   optional: buddies separated by spaces, users of the file or of
            the database

Lines starting with # are comments. Every line is checked before anything
is written; if any is wrong (a bad name, a user that exists already, a
gateway or buddy that does not), nothing is imported and each problem is
printed with its line and field. Passwords are hashed (argon2id) a core at a
time in parallel: about 0.1 s of CPU each, none for SIP-only users.`,
		Example: `  baton gateway add gw1 --secret-file gw1.secret --data-dir baton-data
  printf 'user,gateway\ndesk100,gw1\ndesk101,gw1\n' > phones.csv
  baton user import phones.csv --data-dir baton-data`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var in io.Reader = cmd.InOrStdin()
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("user import: %w", err)
				}
				defer f.Close()
				in = f
			} else {
				name = "standard input"
			}
			users, err := access.ParseUserCSV(in, name)
			if err != nil {
				return err
			}
			db, err := openUsers(cmd.Context(), cmd, true)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.ImportUsers(cmd.Context(), users, name)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), st)
			return err
		},
	}
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change a user's password (from --password-file or standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: dbRun(false, true, func(ctx context.Context, db *access.UserDB, args []string, pw string) (string, error) {
			return fmt.Sprintf("password of %s changed\n", args[0]), db.SetPassword(ctx, args[0], pw)
		}),
	}
	passwd.Flags().String("password-file", "", "read the password from this `file`")
	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Delete a user and its buddy links",
		Args:  cobra.ExactArgs(1),
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
			return fmt.Sprintf("user %s deleted\n", args[0]), db.DeleteUser(ctx, args[0])
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their buddies (SIP-only users are marked sip-only)",
		Args:  cobra.NoArgs,
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, _ []string, _ string) (string, error) {
			users, err := db.Users(ctx)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			for _, u := range users {
				buddies, err := db.Buddies(ctx, u.Name)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(&b, "%s\tbuddies: %s", u.Name, strings.Join(buddies, ","))
				if u.SIPOnly {
					b.WriteString("\tsip-only")
				}
				b.WriteByte('\n')
			}
			return b.String(), nil
		}),
	}
	user.AddCommand(add, imp, passwd, del, list)
	return user
}

func newBuddyCmd() *cobra.Command {
	buddy := &cobra.Command{
		Use:   "buddy",
		Short: "Manage buddy links between users (add, del); links are mutual",
	}
	config.UserFlags(buddy.PersistentFlags())
	add := &cobra.Command{
		Use:   "add USER BUDDY",
		Short: "Make two users buddies of each other",
		Args:  cobra.ExactArgs(2),
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
			return fmt.Sprintf("%s and %s are buddies\n", args[0], args[1]), db.AddBuddy(ctx, args[0], args[1])
		}),
	}
	del := &cobra.Command{
		Use:   "del USER BUDDY",
		Short: "Remove a buddy link",
		Args:  cobra.ExactArgs(2),
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
			return fmt.Sprintf("%s and %s are no longer buddies\n", args[0], args[1]), db.DeleteBuddy(ctx, args[0], args[1])
		}),
	}
	buddy.AddCommand(add, del)
	return buddy
}

// addGatewayCredentialCmds adds `baton gateway add|list|remove`: the
// gateway credentials of the access server (issue 8 §1), kept in its user
// database next to the users.
func addGatewayCredentialCmds(gw *cobra.Command) {
	add := &cobra.Command{
		Use:   "add NAME [--users USER,...] [--secret-file FILE]",
		Short: "Issue a gateway credential at the access server, delegated the given users",
		Long: `Issue a credential for a gateway named NAME: "baton gateway" logs the SIP
devices it bridges in with it (config credential.gateway and
credential.secret_file) instead of each user's password, and the access
server lets it act only for the users delegated here (or later, with
"baton gateway delegate" or the gateway column of "baton user import"). A
fresh random
secret is generated; it is written to --secret-file (mode 0600, which must
not exist yet) or else printed once. The access server stores only its
argon2id hash.`,
		Example: `  baton gateway add gw1 --users alice,carol --secret-file gw1.secret --data-dir baton-data`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			usersFlag, _ := cmd.Flags().GetString("users")
			secretFile, _ := cmd.Flags().GetString("secret-file")
			var users []string
			for _, u := range strings.Split(usersFlag, ",") {
				if u = strings.TrimSpace(u); u != "" {
					users = append(users, u)
				}
			}
			db, err := openUsers(cmd.Context(), cmd, false)
			if err != nil {
				return err
			}
			defer db.Close()
			secret := access.NewGatewaySecret()
			var f *os.File
			if secretFile != "" {
				// Created before the credential, so a bad path leaves no
				// credential whose secret nobody has.
				if f, err = os.OpenFile(secretFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return fmt.Errorf("gateway add: secret file: %w", err)
				}
				defer f.Close()
			}
			if err := db.AddGateway(cmd.Context(), args[0], secret, users); err != nil {
				if f != nil {
					_ = f.Close()
					_ = os.Remove(secretFile)
				}
				return err
			}
			out := cmd.OutOrStdout()
			if f != nil {
				if _, err := fmt.Fprintln(f, secret); err != nil {
					return fmt.Errorf("gateway add: write secret file: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("gateway add: write secret file: %w", err)
				}
				_, err = fmt.Fprintf(out, "gateway %s added for %s; secret written to %s\n", args[0], forUsers(users), secretFile)
				return err
			}
			_, err = fmt.Fprintf(out, "gateway %s added for %s; secret (shown once):\n%s\n", args[0], forUsers(users), secret)
			return err
		},
	}
	add.Flags().String("users", "", "comma-separated `users` the gateway may log in (none: delegate them later)")
	add.Flags().String("secret-file", "", "write the secret to this `file` (created, mode 0600) instead of printing it")
	config.UserFlags(add.Flags())
	list := &cobra.Command{
		Use:   "list",
		Short: "List the access server's gateway credentials and their delegated users",
		Args:  cobra.NoArgs,
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, _ []string, _ string) (string, error) {
			gws, err := db.ListGateways(ctx)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			for _, g := range gws {
				fmt.Fprintf(&b, "%s\tusers: %s\n", g.Name, strings.Join(g.Users, ","))
			}
			return b.String(), nil
		}),
	}
	config.UserFlags(list.Flags())
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a gateway credential; its devices cannot log in (or renew) with it any more",
		Args:  cobra.ExactArgs(1),
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
			return fmt.Sprintf("gateway %s removed\n", args[0]), db.DeleteGateway(ctx, args[0])
		}),
	}
	config.UserFlags(remove.Flags())
	delegate := &cobra.Command{
		Use:   "delegate NAME USER...",
		Short: "Let a gateway credential log in the devices of more users",
		Args:  cobra.MinimumNArgs(2),
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
			return fmt.Sprintf("gateway %s may now log in %s\n", args[0], strings.Join(args[1:], ",")), db.Delegate(ctx, args[0], args[1:])
		}),
	}
	config.UserFlags(delegate.Flags())
	undelegate := &cobra.Command{
		Use:   "undelegate NAME USER...",
		Short: "Withdraw users from a gateway credential; their devices lose their credential at the next renewal",
		Args:  cobra.MinimumNArgs(2),
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, args []string, _ string) (string, error) {
			return fmt.Sprintf("gateway %s may no longer log in %s\n", args[0], strings.Join(args[1:], ",")), db.Undelegate(ctx, args[0], args[1:])
		}),
	}
	config.UserFlags(undelegate.Flags())
	gw.AddCommand(add, list, remove, delegate, undelegate)
}

// forUsers says whom `gateway add` delegated.
func forUsers(users []string) string {
	if len(users) == 0 {
		return "no users yet (baton gateway delegate, or the gateway column of baton user import)"
	}
	return "users " + strings.Join(users, ",")
}
