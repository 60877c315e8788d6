package handoff

// Role is the part an endpoint plays in one handoff.
type Role uint8

// Roles. The letters are the ones DESIGN.md §2 and the claim use.
const (
	RoleUnknown Role = iota
	// RoleA is the device taking the call (claim 1: "the first endpoint").
	RoleA
	// RoleB is the device that has the call, same user as A.
	RoleB
	// RoleC is the far party; it keeps the call throughout.
	RoleC
	// RoleM is an endpoint whose own address changed mid-call; it replays
	// claim steps 8-12 alone (DESIGN.md §2, last paragraph). Its far party
	// uses C's table.
	RoleM

	roleCount
)

// Roles lists every known role in table order.
func Roles() []Role { return []Role{RoleA, RoleB, RoleC, RoleM} }

// String returns the role's letter ("A", "B", "C", "M").
func (r Role) String() string {
	switch r {
	case RoleA:
		return "A"
	case RoleB:
		return "B"
	case RoleC:
		return "C"
	case RoleM:
		return "M"
	}
	return "Unknown"
}

// Description says who plays the role, for docs and logs.
func (r Role) Description() string {
	switch r {
	case RoleA:
		return "the device taking the call"
	case RoleB:
		return "the device that has the call (same user as A)"
	case RoleC:
		return "the far party, who keeps the call throughout"
	case RoleM:
		return "an endpoint whose own address changes mid-call (mobility)"
	}
	return "unknown role"
}
