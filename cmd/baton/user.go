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
		Short: "Manage the access server's users (add, del, passwd, list)",
	}
	config.UserFlags(user.PersistentFlags())
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user; the password comes from --password-file or standard input",
		Args:  cobra.ExactArgs(1),
		RunE: dbRun(true, true, func(ctx context.Context, db *access.UserDB, args []string, pw string) (string, error) {
			return fmt.Sprintf("user %s added\n", args[0]), db.AddUser(ctx, args[0], pw)
		}),
	}
	add.Flags().String("password-file", "", "read the password from this `file`")
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
		Short: "List users and their buddies",
		Args:  cobra.NoArgs,
		RunE: dbRun(false, false, func(ctx context.Context, db *access.UserDB, _ []string, _ string) (string, error) {
			users, err := db.ListUsers(ctx)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			for _, u := range users {
				buddies, err := db.Buddies(ctx, u)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(&b, "%s\tbuddies: %s\n", u, strings.Join(buddies, ","))
			}
			return b.String(), nil
		}),
	}
	user.AddCommand(add, passwd, del, list)
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
		Use:   "add NAME --users USER,... [--secret-file FILE]",
		Short: "Issue a gateway credential at the access server, delegated the given users",
		Long: `Issue a credential for a gateway named NAME: "baton gateway" logs the SIP
devices it bridges in with it (config credential.gateway and
credential.secret_file) instead of each user's password, and the access
server lets it act only for the users delegated here. A fresh random
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
			if len(users) == 0 {
				return errors.New("gateway add: --users is required: the users this gateway may log in (e.g. --users alice,carol)")
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
				_, err = fmt.Fprintf(out, "gateway %s added for users %s; secret written to %s\n", args[0], strings.Join(users, ","), secretFile)
				return err
			}
			_, err = fmt.Fprintf(out, "gateway %s added for users %s; secret (shown once):\n%s\n", args[0], strings.Join(users, ","), secret)
			return err
		},
	}
	add.Flags().String("users", "", "comma-separated `users` the gateway may log in (required)")
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
