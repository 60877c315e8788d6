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
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, cmd.InOrStdin())
			if err != nil {
				return err
			}
			db, err := openUsers(cmd.Context(), cmd, true)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.AddUser(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s added\n", args[0])
			return nil
		},
	}
	add.Flags().String("password-file", "", "read the password from this `file`")
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change a user's password (from --password-file or standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, cmd.InOrStdin())
			if err != nil {
				return err
			}
			db, err := openUsers(cmd.Context(), cmd, false)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.SetPassword(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", args[0])
			return nil
		},
	}
	passwd.Flags().String("password-file", "", "read the password from this `file`")
	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Delete a user and its buddy links",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openUsers(cmd.Context(), cmd, false)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.DeleteUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", args[0])
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their buddies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openUsers(cmd.Context(), cmd, false)
			if err != nil {
				return err
			}
			defer db.Close()
			users, err := db.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			for _, u := range users {
				b, err := db.Buddies(cmd.Context(), u)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tbuddies: %s\n", u, strings.Join(b, ","))
			}
			return nil
		},
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
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openUsers(cmd.Context(), cmd, false)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.AddBuddy(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s and %s are buddies\n", args[0], args[1])
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "del USER BUDDY",
		Short: "Remove a buddy link",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openUsers(cmd.Context(), cmd, false)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.DeleteBuddy(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s and %s are no longer buddies\n", args[0], args[1])
			return nil
		},
	}
	buddy.AddCommand(add, del)
	return buddy
}
