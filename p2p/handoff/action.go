package handoff

import "strconv"

// Action is something the owner of a machine must do after a transition,
// in the order given. Actions that send go directly to the named peer
// (DESIGN.md §2: the access server is never on the call path).
type Action uint8

// Actions, grouped by the role that performs them.
const (
	ActionUnknown Action = iota

	// A.
	ActSendSessionQuery
	ActChooseSession
	ActStartAudioToC
	ActSendStopAudio
	ActSendReestablish
	ActReleaseB
	ActSendResume
	ActSendWithdraw

	// A and M (claim steps 8-11).
	ActCloseMedia
	ActAllocateAddress
	ActRestartAudio
	ActSendNewAddress

	// A and B.
	ActStopAudioToC

	// B.
	ActSendSessionParams
	ActRefusePolicy
	ActRefuseBusy
	ActSendStopAck
	ActResumeAudio
	ActSendResumeAck
	ActReleaseCall

	// C.
	ActPlayA
	ActSwitchPeerToA
	ActAcceptReestablish
	ActRefuseReestablish
	ActRevertToB
	ActUpdatePeerAddress
	ActSendAddressAck

	// C and M.
	ActEndCall

	actionCount
)

type actionInfo struct{ name, desc string }

func (a Action) info() actionInfo {
	switch a {
	case ActSendSessionQuery:
		return actionInfo{"SendSessionQuery", "Send a session query directly to B (never before B's presence arrived)."}
	case ActChooseSession:
		return actionInfo{"ChooseSession", "Pick the session the user asked for by id; fire SessionChosen or NoSession."}
	case ActStartAudioToC:
		return actionInfo{"StartAudioToC", "Open a provisional media socket and send audio directly to C with B's keys and a new SSRC (RFC 3550 §8.2: a new source never reuses B's)."}
	case ActSendStopAudio:
		return actionInfo{"SendStopAudio", "Tell B directly to stop sending audio to C."}
	case ActSendReestablish:
		return actionInfo{"SendReestablish", "Send C, over signaling, a re-establish carrying B's grant."}
	case ActReleaseB:
		return actionInfo{"ReleaseB", "Tell B it is released."}
	case ActSendResume:
		return actionInfo{"SendResume", "Tell B to resume its audio to C."}
	case ActSendWithdraw:
		return actionInfo{"SendWithdraw", "Tell C, on the step-7 connection, that A gave the handoff up: C goes back to B (sent only once C may have accepted A)."}
	case ActCloseMedia:
		return actionInfo{"CloseMedia", "Close the media session on the old address without any termination signal to C (no BYE, no RTCP BYE)."}
	case ActAllocateAddress:
		return actionInfo{"AllocateAddress", "Obtain a new local IP address and port for the media."}
	case ActRestartAudio:
		return actionInfo{"RestartAudio", "Restart audio from the new address with a new SSRC (RFC 3550 §8.2: a source that changes its transport address chooses a new SSRC)."}
	case ActSendNewAddress:
		return actionInfo{"SendNewAddress", "Send the new IP address and port directly to the far party over signaling."}
	case ActStopAudioToC:
		return actionInfo{"StopAudioToC", "Stop sending audio to C (A closes its provisional media; B mutes but keeps the session)."}
	case ActSendSessionParams:
		return actionInfo{"SendSessionParams", "Answer with the session parameters and a grant signed by B that C can verify."}
	case ActRefusePolicy:
		return actionInfo{"RefusePolicy", "Answer that the transfer policy refuses."}
	case ActRefuseBusy:
		return actionInfo{"RefuseBusy", "Answer that this call is already being handed off."}
	case ActSendStopAck:
		return actionInfo{"SendStopAck", "Acknowledge stop-audio."}
	case ActResumeAudio:
		return actionInfo{"ResumeAudio", "Send audio to C again."}
	case ActSendResumeAck:
		return actionInfo{"SendResumeAck", "Acknowledge resume."}
	case ActReleaseCall:
		return actionInfo{"ReleaseCall", "Drop the call locally and silently: no message to C, whose call goes on with A."}
	case ActPlayA:
		return actionInfo{"PlayA", "Play A's authenticated stream instead of B's: exactly one source plays."}
	case ActSwitchPeerToA:
		return actionInfo{"SwitchPeerToA", "Make A the media peer: send audio to A's address and play A."}
	case ActAcceptReestablish:
		return actionInfo{"AcceptReestablish", "Answer A: accepted."}
	case ActRefuseReestablish:
		return actionInfo{"RefuseReestablish", "Answer: refused; the media peer does not change."}
	case ActRevertToB:
		return actionInfo{"RevertToB", "Make B the media peer again: send audio to B and play B."}
	case ActUpdatePeerAddress:
		return actionInfo{"UpdatePeerAddress", "Send audio to the peer's new address from now on."}
	case ActSendAddressAck:
		return actionInfo{"SendAddressAck", "Acknowledge the new address."}
	case ActEndCall:
		return actionInfo{"EndCall", "End the call locally."}
	case ActionUnknown:
		return actionInfo{"Unknown", ""}
	}
	return actionInfo{name: "Action(" + strconv.Itoa(int(a)) + ")"}
}

// String returns the action's name without its prefix, e.g. "SendStopAudio".
func (a Action) String() string { return a.info().name }

// Description says what the owner does.
func (a Action) Description() string { return a.info().desc }
