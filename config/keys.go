package config

import (
	"fmt"
	"slices"
	"strings"
)

// keySet is the set of keys one command accepts, derived from its defaults
// so that the structs, the strictness check and the docs cannot disagree.
type keySet struct {
	leaves   map[string]bool // "signal.listen", "codecs"
	sections map[string]bool // "signal", "audio"
}

func newKeySet(leaves []string) keySet {
	ks := keySet{leaves: map[string]bool{}, sections: map[string]bool{}}
	for _, k := range leaves {
		ks.leaves[k] = true
		for i := strings.IndexByte(k, '.'); i >= 0; i = next(k, i) {
			ks.sections[k[:i]] = true
		}
	}
	return ks
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '.')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// unknown returns the error for a key that is not a leaf of this command.
func (ks keySet) unknown(where, key string) error {
	if ks.sections[key] {
		return &keyError{
			msg: fmt.Sprintf("config: %s: %q is a section, not a key; set one of its keys (%s)",
				where, key, strings.Join(ks.children(key), ", ")),
			err: ErrInvalid,
		}
	}
	msg := fmt.Sprintf("config: %s: unknown key %q", where, key)
	if s := ks.suggest(key); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &keyError{msg: msg, err: ErrUnknownKey}
}

func (ks keySet) children(section string) []string {
	var out []string
	for k := range ks.leaves {
		if strings.HasPrefix(k, section+".") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// suggest returns the known key or section closest to key by edit distance,
// or "" when nothing is close enough to be a plausible typo.
func (ks keySet) suggest(key string) string {
	const maxLen = 64 // longer input is not a typo, and distance is O(n*m)
	if len(key) > maxLen {
		return ""
	}
	best, bestD := "", len(key)/3+1
	consider := func(k string) {
		// Ties go to the lexically smaller key so the message is stable.
		if d := distance(key, k); d < bestD || d == bestD && best != "" && k < best {
			best, bestD = k, d
		}
	}
	for k := range ks.leaves {
		consider(k)
	}
	for k := range ks.sections {
		consider(k)
	}
	return best
}

// distance is the Levenshtein edit distance between two ASCII keys.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
