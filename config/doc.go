// Package config loads and validates the configuration of every baton
// command into plain typed structs (Access, Phone, Demo, Ctl, User). It is
// the only package that knows about koanf; it imports no other package of
// this module.
//
// # Precedence
//
// Each loader layers, lowest first:
//
//  1. the defaults (DefaultPhone and friends);
//  2. the YAML file named by Source.File (the --config flag; "" = none);
//  3. environment variables BATON_<KEY>, upper-case, "__" for nesting:
//     BATON_SIGNAL__LISTEN sets signal.listen, BATON_PASSWORD_FILE sets
//     password_file;
//  4. command-line flags, but only those the user actually set: a flag left
//     at its registered default never overrides the file or environment.
//
// A null value in the file (`ca:` with nothing after it, or a section whose
// keys are all commented out) means "not set here": the lower layer wins.
//
// # Strictness
//
// An unknown key in the file is an error that names the key and the file and
// suggests the closest known key. So is a BATON_* variable that maps to no key
// of the command being loaded. The check is per command on purpose: the
// variables of all commands share the prefix, so a shell that exports
// BATON_DATA_DIR for `baton access` makes `baton phone` fail with an error
// naming BATON_DATA_DIR, rather than silently ignoring what may be a typo.
// Unset it (or use a file per command) when switching commands.
//
// Values are decoded strictly: durations are Go duration strings ("30s"; a
// bare 0 is accepted as zero), integers must be integers, booleans true or
// false, and lists are YAML sequences or comma-separated strings
// ("PCMA,PCMU"). Every problem found is reported, joined with errors.Join,
// each wrapping ErrUnknownKey, ErrInvalid or ErrParse.
package config
