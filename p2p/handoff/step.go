package handoff

import "strconv"

// Step is a step of claim 1 of US 8,380,859 B2 as numbered in DESIGN.md §2.
// StepNone (0) marks rows that belong to no step: failure paths, refusals,
// rollbacks and the mobility trigger.
type Step uint8

// StepNone is the zero Step: the row carries out no claim step.
const StepNone Step = 0

// LastStep is the final claim step (12: A receives C's audio on the new
// address and B is released).
const LastStep Step = 12

// String returns "step N", or "none" for StepNone.
func (s Step) String() string {
	if s == StepNone {
		return "none"
	}
	return "step " + strconv.Itoa(int(s))
}

// Title returns a few words naming the step, for diagrams and logs.
func (s Step) Title() string {
	switch s {
	case 1:
		return "A logs in"
	case 2:
		return "B's presence, then a query to B"
	case 3:
		return "B answers with session parameters"
	case 4:
		return "A sends audio to C"
	case 5:
		return "A tells B to stop its audio"
	case 6:
		return "no audio from C reaches A"
	case 7:
		return "A re-establishes with C out of band"
	case 8:
		return "A closes its provisional session silently"
	case 9:
		return "A obtains a new address"
	case 10:
		return "A restarts audio on it"
	case 11:
		return "A sends the new address to C"
	case 12:
		return "C's audio on the new address, B released"
	}
	return ""
}

// Description returns the claim wording of the step (DESIGN.md §2).
func (s Step) Description() string {
	switch s {
	case 1:
		return "A logs into the P2P network through the access server."
	case 2:
		return "A receives presence for B (same user, another device) as a result of logging in, and only then sends a session query directly to B."
	case 3:
		return "B answers directly with session parameters for each active session: the session is between B and C, it carries two-way audio, and what A needs to reach C (C's signaling and media addresses, codec, ptime, SSRCs, media keys, a grant signed by B that C can verify)."
	case 4:
		return "A sends audio directly to C (make-before-break: C may receive both for a moment and plays exactly one source, switching to A's authenticated stream)."
	case 5:
		return "A instructs B directly to stop sending audio to C."
	case 6:
		return "A determines that audio is not being received from C (C still sends to B): a bounded timer measured from step 5, a few packet times by default."
	case 7:
		return "A uses out-of-band signaling directly with C (the signaling channel, not the RTP stream) to re-establish the session with A as C's media peer."
	case 8:
		return "A closes its provisional session with C without sending a termination signal: C keeps the call; no BYE-like message is ever sent to C."
	case 9:
		return "A obtains a new IP address and port for the session's media."
	case 10:
		return "A restarts the audio session on that address."
	case 11:
		return "A sends the new IP address and port directly to C."
	case 12:
		return "A receives audio directly from C on the new address. B is released silently."
	}
	return ""
}
