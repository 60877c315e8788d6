package config

import (
	"log/slog"
	"testing"
)

func TestLogLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want LogLevel
		slog slog.Level
	}{
		{"debug", LogLevelDebug, slog.LevelDebug},
		{"INFO", LogLevelInfo, slog.LevelInfo},
		{"warn", LogLevelWarn, slog.LevelWarn},
		{"error", LogLevelError, slog.LevelError},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			var l LogLevel
			if err := l.UnmarshalText([]byte(tc.in)); err != nil || l != tc.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tc.in, l, err, tc.want)
			}
			if l.Slog() != tc.slog {
				t.Errorf("Slog() = %v, want %v", l.Slog(), tc.slog)
			}
			b, _ := l.MarshalText()
			var back LogLevel
			if err := back.UnmarshalText(b); err != nil || back != l {
				t.Errorf("round trip via %q = %v, %v", b, back, err)
			}
		})
	}
	var l LogLevel
	for _, bad := range []string{"", "unknown", "warning", "trace"} {
		if err := l.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
	if LogLevelUnknown.String() != "unknown" || LogLevel(42).String() != "LogLevel(42)" {
		t.Errorf("String of unknown levels: %q, %q", LogLevelUnknown, LogLevel(42))
	}
}

func TestLogFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]LogFormat{"text": LogFormatText, "json": LogFormatJSON, "JSON": LogFormatJSON} {
		var f LogFormat
		if err := f.UnmarshalText([]byte(in)); err != nil || f != want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", in, f, err, want)
		}
	}
	var f LogFormat
	for _, bad := range []string{"", "unknown", "logfmt"} {
		if err := f.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
	if LogFormatJSON.String() != "json" || LogFormat(-1).String() != "LogFormat(-1)" {
		t.Errorf("String: %q, %q", LogFormatJSON, LogFormat(-1))
	}
}
