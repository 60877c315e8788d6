package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/baton-voice/baton/config"
	"github.com/baton-voice/baton/p2p/control"
	"github.com/baton-voice/baton/p2p/endpoint"
)

func newCtlCmd() *cobra.Command {
	ctl := &cobra.Command{
		Use:   "ctl",
		Short: "Drive a running baton process through its control API (--admin ADDR)",
	}
	config.CtlFlags(ctl.PersistentFlags())
	client := func(cmd *cobra.Command) (*control.Client, error) {
		cfg, err := config.LoadCtl(source(cmd))
		if err != nil {
			return nil, err
		}
		return control.NewClient(cfg.Admin, cfg.Timeout), nil
	}
	printCall := func(cmd *cobra.Command, info endpoint.CallInfo) {
		control.PrintCalls(cmd.OutOrStdout(), []endpoint.CallInfo{info})
	}
	ctl.AddCommand(
		&cobra.Command{
			Use:   "status",
			Short: "Show the process's status",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				raw, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				if err := json.Indent(&buf, raw, "", "  "); err != nil {
					return fmt.Errorf("status: %w", err)
				}
				buf.WriteByte('\n')
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
				return err
			},
		},
		&cobra.Command{
			Use:   "buddies",
			Short: "List buddies and own devices with their presence",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				b, err := c.Buddies(cmd.Context())
				if err != nil {
					return err
				}
				control.PrintBuddies(cmd.OutOrStdout(), b)
				return nil
			},
		},
		&cobra.Command{
			Use:   "calls",
			Short: "List calls (live, then recently ended)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				calls, err := c.Calls(cmd.Context())
				if err != nil {
					return err
				}
				control.PrintCalls(cmd.OutOrStdout(), calls)
				return nil
			},
		},
		&cobra.Command{
			Use:   "call USER[/DEVICE]",
			Short: "Place a call to a buddy (its best online device) or to one device",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				info, err := c.Dial(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				printCall(cmd, info)
				return nil
			},
		},
		&cobra.Command{
			Use:   "answer ID",
			Short: "Answer a ringing incoming call",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				info, err := c.Answer(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				printCall(cmd, info)
				return nil
			},
		},
		&cobra.Command{
			Use:   "hangup ID",
			Short: "Hang up, cancel or decline a call",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				info, err := c.Hangup(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				printCall(cmd, info)
				return nil
			},
		},
		&cobra.Command{
			Use:   "events [TYPE-PREFIX]",
			Short: "Stream events (login, presence, call states) until interrupted",
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				filter := ""
				if len(args) == 1 {
					filter = args[0]
				}
				err = c.Events(cmd.Context(), filter, func(ev endpoint.Event) error {
					control.PrintEvent(cmd.OutOrStdout(), ev)
					return nil
				})
				if cmd.Context().Err() != nil || errors.Is(err, control.ErrStreamEnded) {
					return nil // interrupted by the user, or the process shut down
				}
				return err
			},
		},
	)
	return ctl
}
