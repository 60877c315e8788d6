package config

import "errors"

// Sentinel errors returned (always wrapped) by the loaders and Validate
// methods. Test for them with errors.Is; the error text names the key, the
// offending value and, where known, where it came from (file or variable).
var (
	// ErrUnknownKey means the YAML file or a BATON_* environment variable
	// names a key that the command being loaded does not have. It is most
	// often a typo; the message suggests the closest known key.
	ErrUnknownKey = errors.New("unknown key")

	// ErrInvalid means a key holds a value of the wrong type ("abc" for an
	// integer, 30 for a duration) or one that fails validation (a port
	// above 65535, a ptime that is not a multiple of 10ms).
	ErrInvalid = errors.New("invalid value")

	// ErrParse means the config file is not well-formed YAML, or its top
	// level is not a mapping of keys.
	ErrParse = errors.New("malformed config file")
)

// keyError is the error every check in this package produces: a complete,
// human-readable message plus the sentinel callers test for. Keeping the
// sentinel out of the text lets messages read naturally, e.g.
// `config: signal.listen: "127.0.0.1:99999": invalid port`.
type keyError struct {
	msg string
	err error
}

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return e.err }
