package config

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadPhone measures one full load of the phone example (parse,
// strictness checks, decode, validate); config loads once per process, so
// this is a sanity bound, not a hot path.
func BenchmarkLoadPhone(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(examplesDir, "phone.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	src := Source{File: "phone.yaml", Env: []string{"BATON_SIGNAL__LISTEN=127.0.0.1:5061"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := loadBytes(phoneSpec(), src, data); err != nil {
			b.Fatal(err)
		}
	}
}
