package handoff

import "fmt"

// party is a participant of a scripted scenario: a machine (two A's when
// two devices race for one call) or the access server, which has none.
type party uint8

const (
	partyNone party = iota
	partyA
	partyA2
	partyS
	partyB
	partyC
	partyM
)

func (p party) role() Role {
	switch p {
	case partyA, partyA2:
		return RoleA
	case partyB:
		return RoleB
	case partyC:
		return RoleC
	case partyM:
		return RoleM
	}
	return RoleUnknown
}

func (p party) String() string {
	switch p {
	case partyA:
		return "A"
	case partyA2:
		return "A2"
	case partyS:
		return "S"
	case partyB:
		return "B"
	case partyC:
		return "C"
	case partyM:
		return "M"
	}
	return "?"
}

// delivery is one thing that happens in a scenario: from sends to, or,
// when from == to, a local completion. event is fired into to's machine;
// EventUnknown marks something drawn in the diagram that no table sees
// (the login request to the access server).
type delivery struct {
	step  Step // the claim step it belongs to in A's story (diagram only)
	from  party
	to    party
	event Event
	label string
	media bool // RTP rather than signaling
}

func local(p party, e Event) delivery { return delivery{from: p, to: p, event: e} }
func msg(from, to party, e Event) delivery {
	return delivery{from: from, to: to, event: e}
}

// happyPath is the twelve steps as the three parties and the access server
// see them. The diagram in docs/handoff.md is drawn from it and the tests
// run it through the tables.
func happyPath() []delivery {
	return []delivery{
		{1, partyA, partyS, EventUnknown, "login (user, device, credential)", false},
		{1, partyS, partyA, EvLoginDone, "profile, short-lived credential", false},
		{2, partyS, partyA, EvPresenceB, "presence: B online", false},
		{2, partyA, partyB, EvQuery, "SessionQuery", false},
		{3, partyB, partyA, EvSessionParams, "SessionParams: B-C, two-way audio, C's addresses, codec, ptime, SSRCs, keys, grant", false},
		// C's media layer plays A's authenticated stream as soon as it
		// arrives; C's machine records the overlap when A re-establishes.
		{4, partyA, partyC, EventUnknown, "RTP with B's keys, new SSRC", true},
		{4, partyA, partyA, EvAudioToCStarted, "provisional audio is out", false},
		{5, partyA, partyB, EvStopAudio, "StopAudio", false},
		{5, partyB, partyA, EvStopAcked, "StopAck", false},
		{6, partyA, partyA, EvTimeout, "NoAudio timer: no audio from C", false},
		{7, partyC, partyC, EvAudioFromA, "A's authenticated stream already plays", false},
		{7, partyA, partyC, EvReestablish, "Reestablish (grant signed by B)", false},
		{7, partyC, partyA, EvReestablishAccepted, "Accepted", false},
		{8, partyA, partyA, EvMediaClosed, "provisional media closed, nothing sent to C", false},
		{9, partyA, partyA, EvAddressAllocated, "new IP address and port", false},
		{10, partyA, partyA, EvAudioRestarted, "audio restarted, new SSRC", false},
		{11, partyA, partyC, EvNewAddress, "NewAddress", false},
		{11, partyC, partyA, EvNewAddressAcked, "AddressAck", false},
		{12, partyC, partyA, EvAudioFromC, "RTP to the new address", true},
		{12, partyA, partyB, EvRelease, "Release (nothing to C)", false},
	}
}

// happyUpTo returns the happy path through claim step n.
func happyUpTo(n Step) []delivery {
	var out []delivery
	for _, d := range happyPath() {
		if d.step <= n {
			out = append(out, d)
		}
	}
	return out
}

// happyFrom returns the happy path from claim step n on.
func happyFrom(n Step) []delivery {
	var out []delivery
	for _, d := range happyPath() {
		if d.step >= n {
			out = append(out, d)
		}
	}
	return out
}

// scenario is a failure path (or a variant of the happy path) from
// DESIGN.md §2, scripted across the parties. It is rendered into
// docs/handoff.md and run by the tests, which check the end states.
type scenario struct {
	name    string
	outcome string
	after   Step // the happy path through this step runs first
	rest    []delivery
	end     []partyState // where each party must end; untouched parties stay at Start
}

type partyState struct {
	p party
	s State
}

func scenarios() []scenario {
	a, a2, b, c, m := partyA, partyA2, partyB, partyC, partyM
	return []scenario{
		{
			name: "B unreachable or silent", outcome: "A fails after its query timer; nothing changed on B or C.",
			after: 1,
			rest:  []delivery{msg(partyS, a, EvPresenceB), local(a, EvTimeout)},
			end:   []partyState{{a, AFailed}, {b, BActive}, {c, CActive}},
		},
		{
			name: "B has no active session", outcome: "Nothing to pull: A fails.",
			after: 1,
			rest:  []delivery{msg(partyS, a, EvPresenceB), msg(b, a, EvNoSession)},
			end:   []partyState{{a, AFailed}},
		},
		{
			name: "B has several sessions", outcome: "A picks the one the user asked for by id and completes.",
			after: 2,
			rest: append([]delivery{
				msg(b, a, EvSeveralSessions),
				local(a, EvSessionChosen),
			}, happyFrom(4)...),
			end: []partyState{{a, ADone}, {b, BReleased}, {c, CActive}},
		},
		{
			name: "Policy refuses", outcome: "B refuses and stays as it was; A fails.",
			after: 1,
			rest: []delivery{
				msg(partyS, a, EvPresenceB),
				msg(a, b, EvQueryDenied),
				msg(b, a, EvPolicyRefused),
			},
			end: []partyState{{a, AFailed}, {b, BActive}, {c, CActive}},
		},
		{
			name: "C refuses step 7", outcome: "Rollback: A stops its audio, B resumes, C plays B again.",
			after: 6,
			rest: []delivery{
				msg(a, c, EvBadGrant),
				msg(c, a, EvReestablishRefused),
				msg(a, b, EvResume),
				msg(b, a, EvResumeAcked),
			},
			end: []partyState{{a, ARolledBack}, {b, BActive}, {c, CActive}},
		},
		{
			name: "C does not answer step 7", outcome: "Rollback as above, on A's answer timer.",
			after: 6,
			rest: []delivery{
				local(a, EvTimeout),
				msg(a, b, EvResume),
				msg(b, a, EvResumeAcked),
			},
			end: []partyState{{a, ARolledBack}, {b, BActive}, {c, CActive}},
		},
		{
			name: "C's acceptance is lost", outcome: "A rolls back; C, switched to A, reverts to B on its own timer.",
			after: 6,
			rest: []delivery{
				msg(a, c, EvReestablish),
				local(a, EvTimeout),
				msg(a, b, EvResume),
				msg(b, a, EvResumeAcked),
				local(c, EvTimeout),
			},
			end: []partyState{{a, ARolledBack}, {b, BActive}, {c, CActive}},
		},
		{
			name: "Forged or replayed grant", outcome: "C refuses it and stays with B; the real A then completes.",
			after: 6,
			rest:  append([]delivery{msg(partyNone, c, EvBadGrant)}, happyFrom(7)...),
			end:   []partyState{{a, ADone}, {b, BReleased}, {c, CActive}},
		},
		{
			name: "B dies during the handoff, C answers", outcome: "A carries on without B's acknowledgement and completes.",
			after: 4,
			rest: []delivery{
				local(a, EvTimeout), // no StopAck
				local(a, EvTimeout), // step 6
				msg(a, c, EvReestablish),
				msg(c, a, EvReestablishAccepted),
				local(a, EvMediaClosed),
				local(a, EvAddressAllocated),
				local(a, EvAudioRestarted),
				msg(a, c, EvNewAddress),
				msg(c, a, EvNewAddressAcked),
				msg(c, a, EvAudioFromC),
			},
			end: []partyState{{a, ADone}, {c, CActive}},
		},
		{
			name: "B dies during the handoff, C refuses", outcome: "The call cannot survive: A ends in ACallEnded, C ends the call by its own media timeout.",
			after: 4,
			rest: []delivery{
				local(a, EvTimeout),
				local(a, EvTimeout),
				msg(a, c, EvBadGrant),
				msg(c, a, EvReestablishRefused),
				local(a, EvTimeout), // no ResumeAck from a dead B
				local(c, EvMediaTimeout),
			},
			end: []partyState{{a, ACallEnded}, {c, CCallEnded}},
		},
		{
			name: "A dies before step 7", outcome: "B's guard timer resumes its audio; C plays B again.",
			after: 5,
			rest:  []delivery{local(b, EvTimeout)},
			end:   []partyState{{b, BActive}, {c, CActive}},
		},
		{
			name: "A dies after step 7", outcome: "B's guard resumes it; C, waiting for A's new address, reverts to B.",
			after: 7,
			rest:  []delivery{local(b, EvTimeout), local(c, EvTimeout)},
			end:   []partyState{{b, BActive}, {c, CActive}},
		},
		{
			name: "Two devices pull the same call", outcome: "B accepts the first stop-audio; the second puller is refused and fails, the first completes.",
			after: 2,
			rest: append([]delivery{
				msg(partyS, a2, EvLoginDone),
				msg(partyS, a2, EvPresenceB),
				msg(a2, b, EvQuery),
				msg(b, a, EvSessionParams),
				msg(b, a2, EvSessionParams),
				local(a, EvAudioToCStarted),
				local(a2, EvAudioToCStarted),
				msg(a, b, EvStopAudio),
				msg(a2, b, EvStopAudio),
				msg(b, a2, EvBusy),
				msg(b, a, EvStopAcked),
			}, happyFrom(6)...),
			end: []partyState{{a, ADone}, {a2, AFailed}, {b, BReleased}, {c, CActive}},
		},
		{
			name: "Mobility", outcome: "M's address changes mid-call; steps 8-12 alone move its media, with no re-login and no dropped call.",
			rest: []delivery{
				local(m, EvAddressChanged),
				local(m, EvMediaClosed),
				local(m, EvAddressAllocated),
				local(m, EvAudioRestarted),
				msg(m, c, EvNewAddress),
				msg(c, m, EvNewAddressAcked),
				msg(c, m, EvAudioFromC),
			},
			end: []partyState{{m, MInCall}, {c, CActive}},
		},
	}
}

// firing is one event a scenario fired into a machine and what came of it.
type firing struct {
	p  party
	tr Transition
}

// run plays deliveries against fresh machines, one per party that has a
// role, and returns the machines and every transition in order. It stops
// at the first rejected event.
func run(ds []delivery) (map[party]*Machine, []firing, error) {
	ms := make(map[party]*Machine)
	var fs []firing
	for _, d := range ds {
		if d.event == EventUnknown || d.to.role() == RoleUnknown {
			continue
		}
		mc, ok := ms[d.to]
		if !ok {
			mc = NewMachine(d.to.role())
			ms[d.to] = mc
		}
		tr, err := mc.Fire(d.event)
		if err != nil {
			return ms, fs, fmt.Errorf("handoff: scenario %s: %w", d.to, err)
		}
		fs = append(fs, firing{d.to, tr})
	}
	return ms, fs, nil
}

// stateOf returns where party p is after a run: its machine's state, or
// its role's start state if nothing ever reached it.
func stateOf(ms map[party]*Machine, p party) State {
	if mc, ok := ms[p]; ok {
		return mc.State()
	}
	return Start(p.role())
}

// script returns the whole delivery list of s.
func (s scenario) script() []delivery {
	var ds []delivery
	if s.after > StepNone {
		ds = happyUpTo(s.after)
	}
	return append(ds, s.rest...)
}
