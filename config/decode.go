package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

// decode unmarshals k into a T. Type problems come back as keyErrors that
// name the key, prefixed with where (a file, a variable) when known.
//
// Decoding is strict (no WeaklyTypedInput): decodeHook performs the few
// conversions that configs need - strings from the environment into
// numbers, booleans and lists, Go duration strings into time.Duration -
// and rejects the rest with a message that shows the value.
func decode[T any](k *koanf.Koanf, where func(key string) string) (T, error) {
	var out T
	err := k.UnmarshalWithConf("", &out, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook:  mapstructure.DecodeHookFuncType(decodeHook),
			ErrorUnused: true,
			TagName:     "koanf",
		},
	})
	if err == nil {
		return out, nil
	}
	var errs []error
	for _, e := range leafErrors(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			errs = append(errs, &keyError{msg: "config: " + e.Error(), err: ErrInvalid})
			continue
		}
		key := de.Name()
		if i := strings.IndexByte(key, '['); i >= 0 { // "codecs[1]" came from "codecs"
			key = key[:i]
		}
		prefix := "config: "
		if w := where(key); w != "" {
			prefix += w + ": "
		}
		errs = append(errs, &keyError{msg: prefix + de.Name() + ": " + de.Unwrap().Error(), err: ErrInvalid})
	}
	return out, errors.Join(errs...)
}

// leafErrors flattens mapstructure's tree of wrapped and joined errors,
// keeping for each branch the innermost DecodeError, whose name is the full
// key path ("audio.tone", not "audio").
func leafErrors(err error) []error {
	var de *mapstructure.DecodeError
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, inner := range e.Unwrap() {
			out = append(out, leafErrors(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil && errors.As(inner, &de) {
			return leafErrors(inner)
		}
	}
	return []error{err}
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeHook converts one value toward the type of its field. It is called
// for every field and list element; returning data unchanged lets
// mapstructure assign it (same or directly assignable type).
func decodeHook(from, to reflect.Type, data any) (any, error) {
	if from == to {
		return data, nil
	}
	s, isString := data.(string)
	switch {
	case to == durationType:
		return toDuration(data)
	case reflect.PointerTo(to).Implements(textUnmarshalerType):
		if !isString {
			return nil, fmt.Errorf("%v: want a string", show(data))
		}
		v := reflect.New(to)
		if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return nil, err
		}
		return v.Elem().Interface(), nil
	}
	switch to.Kind() {
	case reflect.String:
		switch from.Kind() {
		case reflect.String:
			return data, nil
		case reflect.Int, reflect.Int64, reflect.Uint64:
			// `device: 1234` in YAML is an integer; the user meant the name.
			return fmt.Sprint(data), nil
		}
		return nil, fmt.Errorf("%v: want a string", show(data))
	case reflect.Int:
		switch {
		case isString:
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%q: want an integer", s)
			}
			return n, nil
		case from.Kind() == reflect.Int || from.Kind() == reflect.Int64:
			return data, nil
		case from.Kind() == reflect.Uint64: // YAML integers above MaxInt64
			return nil, fmt.Errorf("%v: out of range", data)
		}
		return nil, fmt.Errorf("%v: want an integer", show(data))
	case reflect.Bool:
		if isString {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("%q: want true or false", s)
			}
			return b, nil
		}
		return nil, fmt.Errorf("%v: want true or false", show(data))
	case reflect.Slice:
		switch {
		case isString:
			// A comma list, as in --codecs PCMA,PCMU or BATON_CODECS=PCMA,PCMU.
			var out []string
			for f := range strings.SplitSeq(s, ",") {
				if f = strings.TrimSpace(f); f != "" {
					out = append(out, f)
				}
			}
			return out, nil
		case from.Kind() == reflect.Slice:
			return data, nil
		}
		return nil, fmt.Errorf("%v: want a list", show(data))
	case reflect.Struct:
		if from.Kind() == reflect.Map {
			return data, nil
		}
		return nil, fmt.Errorf("%v: want a mapping of keys", show(data))
	}
	return data, nil
}

func toDuration(data any) (any, error) {
	switch v := data.(type) {
	case time.Duration:
		return v, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q: want a duration such as \"30s\" or \"20ms\"", v)
		}
		return d, nil
	case int:
		// A bare 0 is unambiguous; any other bare number lacks its unit.
		if v == 0 {
			return time.Duration(0), nil
		}
	}
	return nil, fmt.Errorf("%v: want a duration with a unit, such as \"30s\" or \"20ms\"", show(data))
}
