// Package handoff holds Baton's call-handoff state machines: pure tables of
// (state, event) -> (next state, actions, claim step) for the three parties of
// a handoff (DESIGN.md §2; claim 1 of US 8,380,859 B2) and for mobility.
//
//   - A is the device taking the call,
//   - B is the device that has the call (same user, another device),
//   - C is the far party, who must never notice more than a change of peer,
//   - M is any endpoint whose own address changes mid-call (mobility: claim
//     steps 8-12 alone).
//
// The package is pure on purpose: no I/O, no goroutines, no clock. The
// owner of a call (one goroutine, see STYLE.md) feeds events it observed
// into a Machine and carries out the Actions it gets back; timers are
// described by State.Timer and Timeouts, and their expiry comes back as
// EvTimeout. Because everything here is data, the same tables drive the
// code, the exhaustive tests and docs/handoff.md (go generate).
//
// In p2p/endpoint one executor per handoff does exactly that: it fires the
// event, runs the new state's timer on the endpoint's clock, and calls the
// one handler each role has for each action (endpoint.HandoffHandlers,
// listed next to every action in docs/handoff.md).
package handoff

//go:generate go run ./internal/gendoc -o ../../docs/handoff.md
