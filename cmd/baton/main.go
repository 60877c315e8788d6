// Command baton is Baton's one binary: the access server, a P2P phone, the
// control client, the demo, and user administration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton:", err)
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit status (the demo's "a check failed").
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "baton",
		Short: "Baton: a P2P voice endpoint that can pull a live call from another device",
		Long: `Baton is a gateway endpoint for a hybrid peer-to-peer voice network: an access
server for login and presence, endpoints that signal each other directly over
mutually authenticated TLS and send audio directly over SRTP.

A device can pull a live call off another device of the same user
("baton ctl pull"), and a call survives an address change ("baton ctl rebind").

Start with "baton demo", which runs an access server and three phones in one
process: a call, a pull between two devices, an address change, with a timeline
and checks. docs/ has the rest.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	config.GlobalFlags(root.PersistentFlags())
	root.AddCommand(
		newAccessCmd(),
		newPhoneCmd(),
		newGatewayCmd(),
		newCtlCmd(),
		newDemoCmd(),
		newUserCmd(),
		newBuddyCmd(),
		newPluginsCmd(),
	)
	return root
}

// source returns the config layers for cmd: the --config file, BATON_*
// environment, and the flags the user set.
func source(cmd *cobra.Command) config.Source {
	file, _ := cmd.Flags().GetString("config")
	return config.Source{File: file, Flags: cmd.Flags()}
}

// newLogger builds the process logger from the log config.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level.Slog()}
	if l.Format == config.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
