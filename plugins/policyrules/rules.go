// Package policyrules is the in-tree transfer policy plugin's engine: an
// ordered list of rules read from YAML, first match wins, on requester,
// owner, kind, far-party pattern, same user, and time of day. The plugin
// binary (plugins/cmd/policy-rules) serves it with the SDK and reloads the
// file when it changes; the engine itself is plain Go and tested in
// process.
//
// The file:
//
//	default: deny             # when no rule matches: allow or deny (default deny)
//	rules:
//	  - name: office hours pulls
//	    kind: pull            # query, pull, transfer or any (default any)
//	    requester: "alice/*"  # glob on user/device: * any run, ? one character
//	    owner: "alice/*"
//	    peer: "sip:*@example.com"  # the far party (C); for kind transfer the target; a rule with peer never matches a request without one
//	    same_user: true       # requester and owner are devices of the same user
//	    time: "08:00-18:00"   # [start, end) local time of day; may wrap midnight ("22:00-06:00")
//	    days: [mon, tue, wed, thu, fri]
//	    timezone: Europe/Berlin  # default: the plugin's local time
//	    action: allow         # allow or deny (required)
//	    reason: "office hours"
//
// Unknown keys are errors that name the key.
package policyrules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/baton-voice/baton/p2p/handoff"
)

// ErrInvalid means a rules file cannot be used; the message names the rule
// and field.
var ErrInvalid = errors.New("invalid policy rules")

// File is the YAML form of a rules file.
type File struct {
	Default string     `yaml:"default"`
	Rules   []RuleSpec `yaml:"rules"`
}

// RuleSpec is the YAML form of one rule.
type RuleSpec struct {
	Name      string   `yaml:"name"`
	Kind      string   `yaml:"kind"`
	Requester string   `yaml:"requester"`
	Owner     string   `yaml:"owner"`
	Peer      string   `yaml:"peer"`
	SameUser  *bool    `yaml:"same_user"`
	Time      string   `yaml:"time"`
	Days      []string `yaml:"days"`
	Timezone  string   `yaml:"timezone"`
	Action    string   `yaml:"action"`
	Reason    string   `yaml:"reason"`
}

// Set is a parsed, validated rules file.
type Set struct {
	defaultAllow bool
	rules        []rule
}

type rule struct {
	name                   string
	kind                   handoff.Kind // KindUnknown: any
	requester, owner, peer *regexp.Regexp
	sameUser               *bool
	hasTime                bool
	from, to               int // minutes since midnight, [from, to)
	days                   uint8
	loc                    *time.Location
	allow                  bool
	reason                 string
}

// Parse reads and validates a rules file.
func Parse(data []byte) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file is an empty rule list (yaml reports io.EOF).
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("policyrules: %w: %v", ErrInvalid, err)
	}
	s := &Set{}
	switch f.Default {
	case "", "deny":
	case "allow":
		s.defaultAllow = true
	default:
		return nil, fmt.Errorf("policyrules: %w: default %q: want allow or deny", ErrInvalid, f.Default)
	}
	for i, rs := range f.Rules {
		r, err := compile(rs)
		if err != nil {
			name := rs.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i+1)
			}
			return nil, fmt.Errorf("policyrules: %w: rule %s: %v", ErrInvalid, name, err)
		}
		if r.name == "" {
			r.name = fmt.Sprintf("#%d", i+1)
		}
		s.rules = append(s.rules, r)
	}
	return s, nil
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func compile(rs RuleSpec) (rule, error) {
	r := rule{name: rs.Name, reason: rs.Reason, sameUser: rs.SameUser, loc: time.Local}
	switch rs.Kind {
	case "", "any":
	case "query":
		r.kind = handoff.KindQuery
	case "pull":
		r.kind = handoff.KindPull
	case "transfer":
		r.kind = handoff.KindTransfer
	default:
		return r, fmt.Errorf("kind %q: want query, pull, transfer or any", rs.Kind)
	}
	switch rs.Action {
	case "allow":
		r.allow = true
	case "deny":
	case "":
		return r, errors.New("action is required: allow or deny")
	default:
		return r, fmt.Errorf("action %q: want allow or deny", rs.Action)
	}
	var err error
	for _, p := range []struct {
		field string
		pat   string
		dst   **regexp.Regexp
	}{{"requester", rs.Requester, &r.requester}, {"owner", rs.Owner, &r.owner}, {"peer", rs.Peer, &r.peer}} {
		if p.pat == "" {
			continue
		}
		if *p.dst, err = glob(p.pat); err != nil {
			return r, fmt.Errorf("%s %q: %v", p.field, p.pat, err)
		}
	}
	if rs.Timezone != "" {
		if r.loc, err = time.LoadLocation(rs.Timezone); err != nil {
			return r, fmt.Errorf("timezone %q: %v", rs.Timezone, err)
		}
	}
	if rs.Time != "" {
		a, b, ok := strings.Cut(rs.Time, "-")
		if !ok {
			return r, fmt.Errorf("time %q: want HH:MM-HH:MM", rs.Time)
		}
		if r.from, err = clock(a); err != nil {
			return r, fmt.Errorf("time %q: %v", rs.Time, err)
		}
		if r.to, err = clock(b); err != nil {
			return r, fmt.Errorf("time %q: %v", rs.Time, err)
		}
		if r.from == r.to {
			return r, fmt.Errorf("time %q: empty window", rs.Time)
		}
		r.hasTime = true
	}
	for _, d := range rs.Days {
		wd, ok := dayNames[strings.ToLower(d)]
		if !ok {
			return r, fmt.Errorf("day %q: want sun, mon, tue, wed, thu, fri or sat", d)
		}
		r.days |= 1 << wd
	}
	return r, nil
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// glob compiles a pattern where * matches any run of characters
// (including '/') and ? exactly one; everything else is literal.
func glob(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Decide applies the first rule that matches req at now.
func (s *Set) Decide(req handoff.Request, now time.Time) handoff.Decision {
	for _, r := range s.rules {
		if r.matches(req, now) {
			reason := r.reason
			if reason == "" {
				reason = "rule " + r.name
			}
			return handoff.Decision{Allow: r.allow, Reason: reason}
		}
	}
	if s.defaultAllow {
		return handoff.Decision{Allow: true, Reason: "no rule matched; default allow"}
	}
	return handoff.Decision{Allow: false, Reason: "no rule matched; default deny"}
}

func (r rule) matches(req handoff.Request, now time.Time) bool {
	if r.kind != handoff.KindUnknown && r.kind != req.Kind {
		return false
	}
	if r.requester != nil && !r.requester.MatchString(req.Requester) {
		return false
	}
	if r.owner != nil && !r.owner.MatchString(req.Owner) {
		return false
	}
	if r.peer != nil && (req.Peer == "" || !r.peer.MatchString(req.Peer)) {
		return false
	}
	if r.sameUser != nil {
		ru, _, _ := strings.Cut(req.Requester, "/")
		ou, _, _ := strings.Cut(req.Owner, "/")
		if (ru != "" && ru == ou) != *r.sameUser {
			return false
		}
	}
	if r.hasTime || r.days != 0 {
		t := now.In(r.loc)
		if r.days != 0 && r.days&(1<<t.Weekday()) == 0 {
			return false
		}
		if r.hasTime {
			m := t.Hour()*60 + t.Minute()
			in := m >= r.from && m < r.to
			if r.from > r.to { // wraps midnight
				in = m >= r.from || m < r.to
			}
			if !in {
				return false
			}
		}
	}
	return true
}
