package handoff

import "strconv"

// Event is something a role's owner observed: a message that arrived, a
// local operation that completed or failed, or a timer that fired. Events
// carry no data; the owner keeps the data (addresses, grants, session ids)
// and checks it before firing the event (a grant that fails verification
// is EvBadGrant, never EvReestablish).
type Event uint8

// Events, grouped by the role that receives them.
const (
	EventUnknown Event = iota

	// A.
	EvLoginDone
	EvPresenceB
	EvSessionParams
	EvSeveralSessions
	EvSessionChosen
	EvNoSession
	EvPolicyRefused
	EvBusy
	EvAudioToCStarted
	EvStopAcked
	EvReestablishAccepted
	EvReestablishRefused
	EvResumeAcked

	// A and M (claim steps 8-12).
	EvMediaClosed
	EvAddressAllocated
	EvAudioRestarted
	EvNewAddressAcked
	EvAudioFromC
	EvMediaFailed

	// B.
	EvQuery
	EvQueryDenied
	EvStopAudio
	EvRelease
	EvResume

	// C.
	EvAudioFromA
	EvAStreamLost
	EvReestablish
	EvBadGrant
	EvNewAddress
	EvWithdraw
	EvMediaTimeout

	// M.
	EvAddressChanged

	// Every role.
	EvTimeout

	eventCount
)

type eventInfo struct{ name, desc string }

func (e Event) info() eventInfo {
	switch e {
	case EvLoginDone:
		return eventInfo{"LoginDone", "The access server accepted A's login and sent its profile."}
	case EvPresenceB:
		return eventInfo{"PresenceB", "Presence for B (same user, another device) arrived as a result of logging in."}
	case EvSessionParams:
		return eventInfo{"SessionParams", "B answered with the parameters of its one active session."}
	case EvSeveralSessions:
		return eventInfo{"SeveralSessions", "B answered with several active sessions."}
	case EvSessionChosen:
		return eventInfo{"SessionChosen", "The owner picked the session the user asked for, by id."}
	case EvNoSession:
		return eventInfo{"NoSession", "B has no active session, or none with the requested id."}
	case EvPolicyRefused:
		return eventInfo{"PolicyRefused", "B answered that the transfer policy refuses the handoff."}
	case EvBusy:
		return eventInfo{"Busy", "B answered that it is already handing this call to another device."}
	case EvAudioToCStarted:
		return eventInfo{"AudioToCStarted", "A's first provisional RTP packets to C are out."}
	case EvStopAcked:
		return eventInfo{"StopAcked", "B acknowledged stop-audio: it no longer sends to C."}
	case EvReestablishAccepted:
		return eventInfo{"ReestablishAccepted", "C accepted A as its media peer."}
	case EvReestablishRefused:
		return eventInfo{"ReestablishRefused", "C refused the re-establish."}
	case EvResumeAcked:
		return eventInfo{"ResumeAcked", "B acknowledged resume: it sends to C again."}
	case EvMediaClosed:
		return eventInfo{"MediaClosed", "The media session on the old address is closed."}
	case EvAddressAllocated:
		return eventInfo{"AddressAllocated", "A new local IP address and port is bound."}
	case EvAudioRestarted:
		return eventInfo{"AudioRestarted", "Audio runs again, from the new address."}
	case EvNewAddressAcked:
		return eventInfo{"NewAddressAcked", "The far party acknowledged the new address."}
	case EvAudioFromC:
		return eventInfo{"AudioFromC", "The far party's audio arrived on the new address."}
	case EvMediaFailed:
		return eventInfo{"MediaFailed", "A local media operation failed (socket, address, codec)."}
	case EvQuery:
		return eventInfo{"Query", "A session query from another device of the same user, allowed by the transfer policy."}
	case EvQueryDenied:
		return eventInfo{"QueryDenied", "A session query the transfer policy refuses."}
	case EvStopAudio:
		return eventInfo{"StopAudio", "Stop-audio from a device holding B's grant for this session."}
	case EvRelease:
		return eventInfo{"Release", "Release from the device whose stop-audio B accepted."}
	case EvResume:
		return eventInfo{"Resume", "Resume from the device whose stop-audio B accepted."}
	case EvAudioFromA:
		return eventInfo{"AudioFromA", "A's first provisional RTP packet arrived and authenticated with the session's media keys."}
	case EvAStreamLost:
		return eventInfo{"AStreamLost", "No audio from anyone for a few packet times after C took A as its media peer (step 7)."}
	case EvReestablish:
		return eventInfo{"Reestablish", "Re-establish from A over signaling with a grant that verifies: signed by B, fresh, never seen before."}
	case EvBadGrant:
		return eventInfo{"BadGrant", "Re-establish whose grant does not verify: forged, replayed or expired."}
	case EvNewAddress:
		return eventInfo{"NewAddress", "The peer sent its new IP address and port over signaling."}
	case EvWithdraw:
		return eventInfo{"Withdraw", "Withdraw from the device C took as its peer at step 7, on that device's connection, for this call, while C keeps B to go back to: that device gave the handoff up (it rolled back after step 7)."}
	case EvMediaTimeout:
		return eventInfo{"MediaTimeout", "No audio from any peer for the media timeout."}
	case EvAddressChanged:
		return eventInfo{"AddressChanged", "The endpoint's own address changed mid-call (Wi-Fi to cellular)."}
	case EvTimeout:
		return eventInfo{"Timeout", "The current state's timer (State.Timer) fired."}
	case EventUnknown:
		return eventInfo{"Unknown", ""}
	}
	return eventInfo{name: "Event(" + strconv.Itoa(int(e)) + ")"}
}

// String returns the event's name without its prefix, e.g. "PresenceB".
func (e Event) String() string { return e.info().name }

// Description says what the owner observed.
func (e Event) Description() string { return e.info().desc }
