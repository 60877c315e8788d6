package handoff

// Row is one line of a role's table: in state From, event Event moves the
// machine to To, and the owner carries out Actions in order. Step is the
// claim step the row carries out (StepNone for failure paths, refusals and
// rollbacks); Note says why, for the people reading docs/handoff.md.
//
// Convention: in A's happy-path rows the event completes the claim step
// named by Step and the actions start the next one; the exception is the
// order the claim itself sets in step 2 (presence arrives, and only then
// does A send its query, both in one row). In B's, C's and M's tables Step
// is the claim step the row takes part in.
type Row struct {
	From    State
	Event   Event
	To      State
	Actions []Action
	Step    Step
	Note    string
}

// Table returns a fresh copy of role r's table, in reading order: the
// happy path first, each failure next to the state it leaves. It returns
// nil for an unknown role.
func Table(r Role) []Row {
	switch r {
	case RoleA:
		return tableA()
	case RoleB:
		return tableB()
	case RoleC:
		return tableC()
	case RoleM:
		return tableM()
	}
	return nil
}

func do(a ...Action) []Action { return a }

// tableA is the device taking the call. Any failure before B mutes ends in
// AFailed with nothing changed; any failure after it rolls back: A stops
// its own audio and tells B to resume, so C is never left without a peer.
// Restarting audio (step 10) on the session step 9 just opened cannot
// fail, so ARestarting has no failure row.
func tableA() []Row {
	return []Row{
		{AIdle, EvLoginDone, AWaitPresence, nil, 1, "logged in through the access server"},
		// Step 2: the query exists only in this row, so it can never precede B's presence.
		{AWaitPresence, EvPresenceB, AQuerying, do(ActSendSessionQuery), 2, "B is online: ask it directly"},
		{AWaitPresence, EvTimeout, AFailed, nil, 0, "B is not online: nothing to pull"},
		{AQuerying, EvSessionParams, AStarting, do(ActStartAudioToC), 3, "make before break: A's audio first"},
		{AQuerying, EvSeveralSessions, AChoosing, do(ActChooseSession), 3, "several calls on B: the user's id decides"},
		{AQuerying, EvNoSession, AFailed, nil, 0, "nothing to pull"},
		{AQuerying, EvPolicyRefused, AFailed, nil, 0, "policy refuses; B unchanged"},
		{AQuerying, EvTimeout, AFailed, nil, 0, "B unreachable or silent; nothing changed"},
		{AChoosing, EvSessionChosen, AStarting, do(ActStartAudioToC), 3, "make before break: A's audio first"},
		{AChoosing, EvNoSession, AFailed, nil, 0, "no session with the requested id"},
		{AStarting, EvAudioToCStarted, AStopping, do(ActSendStopAudio), 4, "C can now switch to A's stream"},
		{AStarting, EvMediaFailed, AFailed, do(ActStopAudioToC), 0, "B never muted; its offer expires"},
		{AStopping, EvStopAcked, ACheckingAudio, nil, 5, "the step-6 timer starts now"},
		{AStopping, EvTimeout, ACheckingAudio, nil, 5, "B or its ack lost: carry on, C decides"},
		{AStopping, EvBusy, AFailed, do(ActStopAudioToC), 0, "lost the race: another device's stop came first"},
		// Step 6: C sends to A only after step 7, so expiry is the determination.
		{ACheckingAudio, EvTimeout, AReestablishing, do(ActSendReestablish), 6, "no audio from C: C still sends to B"},
		{AReestablishing, EvReestablishAccepted, AClosing, do(ActCloseMedia), 7, "C's peer is A; close silently, no BYE"},
		{AReestablishing, EvReestablishRefused, ARollingBack, do(ActStopAudioToC, ActSendResume), 0, "C refuses: roll back to B"},
		// C may have accepted A (its answer lost, or late): A withdraws on
		// the step-7 connection, which C reads in order, so C goes back to
		// B however late it handles what A sent.
		{AReestablishing, EvTimeout, ARollingBack, do(ActStopAudioToC, ActSendWithdraw, ActSendResume), 0, "C does not answer: roll back to B, withdrawing from C"},
		{AClosing, EvMediaClosed, AAllocating, do(ActAllocateAddress), 8, "C kept the call"},
		{AAllocating, EvAddressAllocated, ARestarting, do(ActRestartAudio), 9, "new SSRC on the new address (RFC 3550 §8.2)"},
		{AAllocating, EvMediaFailed, ARollingBack, do(ActSendWithdraw, ActSendResume), 0, "no address: roll back; C goes back to B on the withdraw"},
		{ARestarting, EvAudioRestarted, ANotifying, do(ActSendNewAddress), 10, "tell C directly"},
		{ANotifying, EvNewAddressAcked, AWaitAudio, nil, 11, "C sends to the new address now"},
		// C may handle the new address late, after A gave up: the withdraw
		// behind it on the same connection takes C back to B.
		{ANotifying, EvTimeout, ARollingBack, do(ActStopAudioToC, ActSendWithdraw, ActSendResume), 0, "C silent: roll back, withdrawing from C"},
		{AWaitAudio, EvAudioFromC, ADone, do(ActReleaseB), 12, "the call is on A; B goes silently"},
		// C acknowledged the new address: it is with A for good and has no
		// way back to B, so a rollback here would leave it sending to a
		// closed port. The call stays on A and waits for C's audio.
		{AWaitAudio, EvTimeout, ADone, do(ActReleaseB), 0, "C's audio is late, but C is with A: keep the call"},
		{ARollingBack, EvResumeAcked, ARolledBack, nil, 0, "the call stays on B"},
		{ARollingBack, EvTimeout, ACallEnded, nil, 0, "B lost mid-handoff and C did not take A"},
	}
}

// tableB is the device that has the call. One B machine runs per call, so
// it arbitrates between pullers: the first stop-audio wins, later ones are
// refused. The owner delivers Resume and Release only from the winner (in
// BOffered, where there is none yet, from a holder of B's grant).
func tableB() []Row {
	return []Row{
		{BActive, EvQuery, BOffered, do(ActSendSessionParams), 3, "same user, policy allows"},
		{BActive, EvQueryDenied, BActive, do(ActRefusePolicy), 0, "policy refuses; nothing changes"},
		{BActive, EvResume, BActive, do(ActSendResumeAck), 0, "late resume (guard fired first): confirm"},
		{BOffered, EvQuery, BOffered, do(ActSendSessionParams), 3, "another device may ask too"},
		{BOffered, EvQueryDenied, BOffered, do(ActRefusePolicy), 0, "policy refuses that one"},
		{BOffered, EvStopAudio, BMuted, do(ActStopAudioToC, ActSendStopAck), 5, "first stop wins; keep the session"},
		{BOffered, EvRelease, BReleased, do(ActStopAudioToC, ActReleaseCall), 12, "stop-audio was lost but the handoff completed"},
		{BOffered, EvResume, BActive, do(ActSendResumeAck), 0, "puller gave up before stopping B"},
		{BOffered, EvTimeout, BActive, nil, 0, "puller never came back; nothing changed"},
		{BMuted, EvQuery, BMuted, do(ActRefuseBusy), 0, "already handing off"},
		{BMuted, EvQueryDenied, BMuted, do(ActRefusePolicy), 0, "policy refuses that one"},
		{BMuted, EvStopAudio, BMuted, do(ActRefuseBusy), 0, "a second puller lost the race"},
		{BMuted, EvRelease, BReleased, do(ActReleaseCall), 12, "C is with A; nothing is sent to C"},
		{BMuted, EvResume, BActive, do(ActResumeAudio, ActSendResumeAck), 0, "rollback: the call stays on B"},
		{BMuted, EvTimeout, BActive, do(ActResumeAudio), 0, "guard: A died; B resumes in bounded time"},
	}
}

// tableC is the far party. It notices A's provisional stream (COverlap)
// when A's re-establish arrives: the media layer has switched playout to
// A's authenticated stream by then, and plays B again by itself when A's
// stream stops before step 7, so C's machine has nothing to do about a
// provisional stream that goes away. It only ever changes its media peer on a grant
// that verifies, and it leaves CActive for CCallEnded only when no peer at
// all has sent audio for the media timeout: C is never dropped by a
// handoff.
func tableC() []Row {
	return []Row{
		{CActive, EvAudioFromA, COverlap, do(ActPlayA), 4, "play exactly one source: A's"},
		{CActive, EvReestablish, CSwitched, do(ActSwitchPeerToA, ActAcceptReestablish), 7, "A's audio was lost on the way; the grant suffices"},
		{CActive, EvBadGrant, CActive, do(ActRefuseReestablish), 0, "forged or replayed: stay with B"},
		{CActive, EvNewAddress, CActive, do(ActUpdatePeerAddress, ActSendAddressAck), 11, "mobility: the peer moved"},
		// C handled A's new address after A had rolled back (A's ack timer
		// ran out first): the withdraw A sent behind it comes next.
		{CActive, EvWithdraw, CActive, do(ActRevertToB), 0, "A gave up after C took its new address late: back to B"},
		{CActive, EvMediaTimeout, CCallEnded, do(ActEndCall), 0, "every peer silent: call ended by C's own timeout"},
		{COverlap, EvReestablish, CSwitched, do(ActSwitchPeerToA, ActAcceptReestablish), 7, "out-of-band, grant verified"},
		{CSwitched, EvNewAddress, CActive, do(ActUpdatePeerAddress, ActSendAddressAck), 11, "the call goes on with A"},
		{CSwitched, EvBadGrant, CSwitched, do(ActRefuseReestablish), 0, "forged or replayed: ignore"},
		{CSwitched, EvWithdraw, CActive, do(ActRevertToB), 0, "A gave up after step 7: back to B, which A told to resume"},
		{CSwitched, EvTimeout, CActive, do(ActRevertToB), 0, "A failed after step 7: back to B, whose guard resumes it"},
		{CSwitched, EvAStreamLost, CActive, do(ActRevertToB), 0, "no audio from anyone a few packet times after step 7: back to B, which resumes on hearing C"},
	}
}

// tableM is mobility (DESIGN.md §2, last paragraph): an endpoint whose own
// address changes mid-call replays claim steps 8-12 alone, with no
// re-login; its far party handles NewAddress in CActive. A move during a
// move is a new run of this table from MInCall (each Rebind has its own
// machine), and restarting audio on a session that is open cannot fail,
// so neither has a row.
func tableM() []Row {
	return []Row{
		{MInCall, EvAddressChanged, MClosing, do(ActCloseMedia), 0, "Wi-Fi to cellular: no BYE to the far party"},
		{MClosing, EvMediaClosed, MAllocating, do(ActAllocateAddress), 8, "the far party kept the call"},
		{MAllocating, EvAddressAllocated, MRestarting, do(ActRestartAudio), 9, "new SSRC on the new address (RFC 3550 §8.2)"},
		{MAllocating, EvMediaFailed, MCallEnded, do(ActEndCall), 0, "no usable address"},
		{MRestarting, EvAudioRestarted, MNotifying, do(ActSendNewAddress), 10, "tell the far party directly"},
		{MNotifying, EvNewAddressAcked, MWaitAudio, nil, 11, "the far party sends to the new address now"},
		// Never drop a call over a move: a far party that missed the message
		// still latches the new authenticated stream (docs/protocol.md §11).
		{MNotifying, EvTimeout, MInCall, nil, 0, "no acknowledgement: the call goes on; the peer may latch the new stream"},
		{MWaitAudio, EvAudioFromC, MInCall, nil, 12, "the call goes on"},
		{MWaitAudio, EvTimeout, MInCall, nil, 0, "far party silent (muted, or mid-handoff): the call goes on"},
	}
}

// Omission is a (state, event) pair left out of a role's table on
// purpose: no correct peer makes the event happen in that state, so the
// machine refuses it like any pair that is not a row. Why says so, for
// docs/handoff.md; the endpoint's tests fail on a row no test reaches, so
// a row either has a test through the real endpoint or is listed here.
type Omission struct {
	Role  Role
	From  State
	Event Event
	Why   string
}

// Omitted returns the pairs left out on purpose, in table order.
func Omitted() []Omission {
	return []Omission{
		{RoleA, AQuerying, EvBusy, "B never answers a session query busy (docs/protocol.md §11): a call it is handing to another device is left out of its session list, which A reads as NoSession. Busy is only B's answer to a second stop-audio (AStopping + Busy); a query answered with any other refusal than forbidden fails as AQuerying + Timeout."},
		{RoleC, COverlap, EvBadGrant, "C checks the grant before it records A's stream: a re-establish whose grant does not verify is CActive + BadGrant, and C enters COverlap only while it handles a verified one, which takes it on to CSwitched at once. Staying in COverlap after a refused grant would leave C with no row for a later NewAddress (B's own move) or MediaTimeout."},
	}
}
