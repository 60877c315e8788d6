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
	var client ctlClient = func(cmd *cobra.Command) (*control.Client, error) {
		cfg, err := config.LoadCtl(source(cmd))
		if err != nil {
			return nil, err
		}
		c := control.NewClient(cfg.Admin, cfg.Timeout)
		if cfg.Endpoint != "" {
			c = c.ForEndpoint(cfg.Endpoint)
		}
		return c, nil
	}
	printCall := func(cmd *cobra.Command, info endpoint.CallInfo) {
		control.PrintCalls(cmd.OutOrStdout(), []endpoint.CallInfo{info})
	}
	// printHandoff prints a pull or rebind that was attempted, then returns
	// its error: a handoff that is not done exits non-zero after showing
	// what happened.
	printHandoff := func(cmd *cobra.Command, info endpoint.HandoffInfo, err error) error {
		if info.ID != "" {
			if perr := control.PrintHandoff(cmd.OutOrStdout(), info); perr != nil && err == nil {
				return perr
			}
		}
		return err
	}
	ctl.AddCommand(
		newCtlPullCmd(client, printHandoff),
		newCtlPushCmd(client, printHandoff),
		newCtlTransferCmd(client),
		newCtlSessionsCmd(client),
		newCtlRebindCmd(client, printHandoff),
		newCtlDTMFCmd(client),
		newCtlHoldCmd(client, true),
		newCtlHoldCmd(client, false),
		newCtlCodecCmd(client),
		&cobra.Command{
			Use:   "handoffs",
			Short: "List recent handoffs and rebinds with their steps",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				list, err := c.HandoffRecords(cmd.Context())
				if err != nil {
					return err
				}
				return control.PrintHandoffRecords(cmd.OutOrStdout(), list)
			},
		},
		&cobra.Command{
			Use:   "handoff ID",
			Short: "Show one handoff or rebind with its steps",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				info, err := c.HandoffRecord(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return control.PrintHandoffRecord(cmd.OutOrStdout(), info)
			},
		},
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
			Use:   "endpoints",
			Short: "List the endpoints of a process that runs many (a gateway's online devices), for --endpoint",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				ids, err := c.Endpoints(cmd.Context())
				if err != nil {
					return err
				}
				for _, id := range ids {
					fmt.Fprintln(cmd.OutOrStdout(), id)
				}
				return nil
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
		newCtlCallCmd(client),
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

// ctlClient builds the control client from the ctl config of cmd.
type ctlClient func(cmd *cobra.Command) (*control.Client, error)

func newCtlPullCmd(client ctlClient, printHandoff func(*cobra.Command, endpoint.HandoffInfo, error) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pull --from DEVICE [--session ID]",
		Short: "Take a live call from another device of this user (the handoff)",
		Long: `Take a live call from another device of the same user without the far party
noticing: the twelve steps of the handoff, each printed with its time. Exits
non-zero, after printing what happened, when the handoff failed or rolled back
(the call then stays on the other device).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, _ := cmd.Flags().GetString("from")
			session, _ := cmd.Flags().GetString("session")
			c, err := client(cmd)
			if err != nil {
				return err
			}
			info, err := c.Pull(cmd.Context(), endpoint.PullRequest{From: from, SessionID: session})
			return printHandoff(cmd, info, err)
		},
	}
	cmd.Flags().String("from", "", "the `device` that has the call: its name, or user/device (required)")
	cmd.Flags().String("session", "", "the call `id` to pull, when the device has several (see ctl sessions)")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func newCtlPushCmd(client ctlClient, printHandoff func(*cobra.Command, endpoint.HandoffInfo, error) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push ID --to DEVICE",
		Short: "Send a live call to another device of this user (it pulls the call)",
		Long: `Send call ID, live on this device, to another device of the same user. The
target takes it with the ordinary pull (the twelve steps of the handoff, printed
with their times as the target recorded them): a softphone takes it at once, a
SIP phone behind the gateway rings first and takes it when answered. Exits
non-zero, after printing what happened, when the target refused (policy, busy,
no answer) or its pull did not take the call; the call then stays here.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, _ := cmd.Flags().GetString("to")
			c, err := client(cmd)
			if err != nil {
				return err
			}
			info, err := c.Push(cmd.Context(), args[0], to)
			return printHandoff(cmd, info, err)
		},
	}
	cmd.Flags().String("to", "", "the `device` to send the call to: its name, or user/device (required)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func newCtlTransferCmd(client ctlClient) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transfer ID (--to TARGET | --attended ID2)",
		Short: "Transfer a live call to another person (blind, or attended with --attended)",
		Long: `Ask the far party of call ID to call TARGET (a user, or user/device) and take
this device's place: once TARGET answers, the call here ends. A far party
that is a SIP phone behind the gateway gets a REFER and calls TARGET itself.

With --attended ID2 instead of --to, the transfer is attended (RFC 5589 §7):
ID2 is this device's other active call, and its far party is the target. The
far party of ID calls the far party of ID2 with a Replaces this device signed,
the far party of ID2 takes that call in place of ID2, and both calls here end:
the two far parties talk to each other.

Exits non-zero with the reason when the far party refused (policy), or the
call to TARGET failed (unknown, offline, busy, no answer, a Replaces refused);
the call (both calls, for --attended) then stays as it was. The command waits
until TARGET answers: give --timeout room (e.g. --timeout 60s) when a person
has to pick up.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, _ := cmd.Flags().GetString("to")
			attended, _ := cmd.Flags().GetString("attended")
			if (to == "") == (attended == "") {
				return fmt.Errorf("transfer %s: give exactly one of --to TARGET (blind) or --attended ID2 (attended)", args[0])
			}
			c, err := client(cmd)
			if err != nil {
				return err
			}
			var info endpoint.TransferInfo
			if attended != "" {
				info, err = c.TransferAttended(cmd.Context(), args[0], attended)
				if err != nil {
					return fmt.Errorf("attended transfer of %s to the far party of %s: %w (both calls stay)", args[0], attended, err)
				}
			} else if info, err = c.Transfer(cmd.Context(), args[0], to); err != nil {
				return fmt.Errorf("transfer %s to %s: %w (the call stays)", args[0], to, err)
			}
			line := fmt.Sprintf("transferred %s: %s now talks to %s", info.CallID, info.Peer, info.Target)
			if info.NewCallID != "" {
				line += " (call " + info.NewCallID + ")"
			}
			if info.Replaces != "" {
				line += "; " + info.Replaces + " replaced"
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), line)
			return err
		},
	}
	cmd.Flags().String("to", "", "the `user` or user/device to transfer the call to (blind transfer)")
	cmd.Flags().String("attended", "", "this device's other active call `ID2`: its far party is the target, and ID2 is replaced (attended transfer)")
	return cmd
}

func newCtlSessionsCmd(client ctlClient) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions --device DEVICE",
		Short: "Ask another device of this user which calls it has (what pull would take)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			device, _ := cmd.Flags().GetString("device")
			c, err := client(cmd)
			if err != nil {
				return err
			}
			list, err := c.Sessions(cmd.Context(), device)
			if err != nil {
				return err
			}
			return control.PrintSessions(cmd.OutOrStdout(), list)
		},
	}
	cmd.Flags().String("device", "", "the `device` to ask: its name, or user/device (required)")
	_ = cmd.MarkFlagRequired("device")
	return cmd
}

func newCtlRebindCmd(client ctlClient, printHandoff func(*cobra.Command, endpoint.HandoffInfo, error) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rebind --ip IP",
		Short: "Move this endpoint's media to a new local IP address (mobility)",
		Long: `Move the endpoint's media to a new local IP address, as when a device moves from
Wi-Fi to cellular: the call goes on from the new address and the far party is
told directly, with no re-login. Later calls use the new address too. Exits
non-zero, after printing what happened, when the rebind did not complete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, _ := cmd.Flags().GetString("ip")
			c, err := client(cmd)
			if err != nil {
				return err
			}
			info, err := c.Rebind(cmd.Context(), ip)
			return printHandoff(cmd, info, err)
		},
	}
	cmd.Flags().String("ip", "", "the new local `address` for media, e.g. 127.0.0.7 (required)")
	_ = cmd.MarkFlagRequired("ip")
	return cmd
}

func newCtlCallCmd(client ctlClient) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "call USER[/DEVICE] [--number NUMBER]",
		Short: "Place a call to a buddy (its best online device) or to one device",
		Long: `Place a call to a buddy (its best online device) or to one device. With
--number, the device is a gateway's trunk device (e.g. pstn/trunk1) and the
number is what the gateway dials out through that trunk.`,
		Example: `  baton ctl call bob
  baton ctl call bob/mobile
  baton ctl call pstn/trunk1 --number +15551234`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd)
			if err != nil {
				return err
			}
			number, _ := cmd.Flags().GetString("number")
			info, err := c.DialNumber(cmd.Context(), args[0], number)
			if err != nil {
				return err
			}
			control.PrintCalls(cmd.OutOrStdout(), []endpoint.CallInfo{info})
			return nil
		},
	}
	cmd.Flags().String("number", "", "telephone `number` for a trunk device to dial out (E.164, e.g. +15551234)")
	return cmd
}

// newCtlHoldCmd is `ctl hold ID` (hold true) or `ctl resume ID`: an
// in-call media update (docs/protocol.md §17) that returns once the far
// party has acknowledged.
func newCtlHoldCmd(client ctlClient, hold bool) *cobra.Command {
	use, short, long := "hold ID", "Put an active call on hold",
		`Put active call ID on hold: a media-update (sendonly) to the far party, which
stops sending audio; this side stops too (Baton plays no music on hold). The
SRTP state is kept. Through a gateway the SIP phone gets a re-INVITE with
a=sendonly. A held call cannot be pulled to another device: resume it first.`
	if !hold {
		use, short, long = "resume ID", "Take a held call off hold",
			`Take call ID off hold: a media-update (sendrecv) to the far party; audio flows
both ways again (unless the far party holds the call too).`
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: "  baton ctl " + use[:len(use)-3] + " c-00c1b475ad2d9629",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd)
			if err != nil {
				return err
			}
			op := c.Hold
			if !hold {
				op = c.Resume
			}
			info, err := op(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			held := info.HeldBy
			if held == "" {
				held = "nobody"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "call %s with %s: direction %s, held by %s\n", info.ID, info.Peer, info.MediaDirection, held)
			return err
		},
	}
}

// newCtlCodecCmd is `ctl codec ID NAME`: both parties switch codec.
func newCtlCodecCmd(client ctlClient) *cobra.Command {
	return &cobra.Command{
		Use:   "codec ID NAME",
		Short: "Switch an active call to another codec both parties offered",
		Long: `Switch active call ID to codec NAME (one both parties offered at call setup):
a media-update to the far party; both reopen their media on the same ports.`,
		Example: "  baton ctl codec c-00c1b475ad2d9629 PCMA",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd)
			if err != nil {
				return err
			}
			info, err := c.SetCodec(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "call %s with %s: codec %s\n", info.ID, info.Peer, info.Codec)
			return err
		},
	}
}

func newCtlDTMFCmd(client ctlClient) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dtmf ID DIGITS [--duration MS]",
		Short: "Send DTMF digits (0-9 * # A-D) to the far party of an active call",
		Long: `Send DTMF digits to the far party of active call ID, in order: up to 32 of
0-9 * # A-D. The far party's event stream shows each as a call.dtmf event; a
gateway plays them to its SIP phone as RFC 4733 telephone-events (or SIP
INFO for a phone without them). Quote the
digits in a shell: # starts a comment.`,
		Example: `  baton ctl dtmf c-00c1b475ad2d9629 '123#'
  baton ctl dtmf c-00c1b475ad2d9629 '*72' --duration 200`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dur, _ := cmd.Flags().GetInt("duration")
			c, err := client(cmd)
			if err != nil {
				return err
			}
			res, err := c.DTMF(cmd.Context(), args[0], args[1], dur)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "dtmf %s sent to %s on call %s (%d ms each)\n", res.Digits, res.Peer, res.CallID, res.DurationMS)
			return err
		},
	}
	cmd.Flags().Int("duration", 0, "tone length of each digit in `ms`, 40-5000 (default 100)")
	return cmd
}
