package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// Log is the logging configuration shared by every command (keys log.level
// and log.format, flags --log-level and --log-format).
type Log struct {
	Level  LogLevel  `koanf:"level"`
	Format LogFormat `koanf:"format"`
}

// DefaultLog returns level info, text format.
func DefaultLog() Log { return Log{Level: LogLevelInfo, Format: LogFormatText} }

func (l Log) validate(p *problems) {
	if l.Level < LogLevelDebug || l.Level > LogLevelError {
		p.add("log.level", l.Level.String(), "want debug, info, warn or error")
	}
	if l.Format < LogFormatText || l.Format > LogFormatJSON {
		p.add("log.format", l.Format.String(), "want text or json")
	}
}

// LogLevel is the minimum level logged.
type LogLevel int

// Log levels, as in log/slog.
const (
	LogLevelUnknown LogLevel = iota
	LogLevelDebug
	LogLevelInfo
	LogLevelWarn
	LogLevelError
)

var logLevelNames = [...]string{"unknown", "debug", "info", "warn", "error"}

// String returns the name used in config files.
func (l LogLevel) String() string {
	if l < 0 || int(l) >= len(logLevelNames) {
		return fmt.Sprintf("LogLevel(%d)", int(l))
	}
	return logLevelNames[l]
}

// MarshalText returns the name used in config files.
func (l LogLevel) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText accepts debug, info, warn or error, in any case.
func (l *LogLevel) UnmarshalText(b []byte) error {
	s := strings.ToLower(string(b))
	for i := LogLevelDebug; i <= LogLevelError; i++ {
		if logLevelNames[i] == s {
			*l = i
			return nil
		}
	}
	return fmt.Errorf("%q: want debug, info, warn or error", b)
}

// Slog returns the matching slog level; Unknown maps to info.
func (l LogLevel) Slog() slog.Level {
	switch l {
	case LogLevelDebug:
		return slog.LevelDebug
	case LogLevelWarn:
		return slog.LevelWarn
	case LogLevelError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// LogFormat selects the slog handler.
type LogFormat int

// Log formats: slog.TextHandler or slog.JSONHandler.
const (
	LogFormatUnknown LogFormat = iota
	LogFormatText
	LogFormatJSON
)

var logFormatNames = [...]string{"unknown", "text", "json"}

// String returns the name used in config files.
func (f LogFormat) String() string {
	if f < 0 || int(f) >= len(logFormatNames) {
		return fmt.Sprintf("LogFormat(%d)", int(f))
	}
	return logFormatNames[f]
}

// MarshalText returns the name used in config files.
func (f LogFormat) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText accepts text or json, in any case.
func (f *LogFormat) UnmarshalText(b []byte) error {
	s := strings.ToLower(string(b))
	for i := LogFormatText; i <= LogFormatJSON; i++ {
		if logFormatNames[i] == s {
			*f = i
			return nil
		}
	}
	return fmt.Errorf("%q: want text or json", b)
}
