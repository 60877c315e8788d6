package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDialogInfo(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(filepath.Join("testdata", "dialog-info", "rfc4235-confirmed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDialogInfo(good)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || d.State != "full" || d.Entity != "sip:alice@example.com" || len(d.Dialogs) != 1 {
		t.Fatalf("parsed %+v", d)
	}
	x := d.Dialogs[0]
	if x.ID != "as7d900as8" || x.CallID != "a84b4c76e66710" || x.LocalTag != "1928301774" || x.RemoteTag != "456887766" ||
		x.Direction != "initiator" || x.State.Value != "confirmed" {
		t.Fatalf("dialog %+v", x)
	}
	for _, c := range []struct{ name, doc string }{
		{"not XML", "hello"},
		{"other root", `<foo xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"/>`},
		{"no namespace", `<dialog-info version="0" state="full" entity="sip:a@b"/>`},
		{"negative version", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="-1" state="full" entity="sip:a@b"/>`},
		{"bad state", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="some" entity="sip:a@b"/>`},
		{"no entity", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"/>`},
		{"dialog without id", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"><dialog><state>confirmed</state></dialog></dialog-info>`},
		{"dialog in a bad state", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"><dialog id="x"><state>ringing</state></dialog></dialog-info>`},
		{"bad direction", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"><dialog id="x" direction="up"><state>confirmed</state></dialog></dialog-info>`},
		{"too big", `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b">` + strings.Repeat(" ", maxDialogInfo) + `</dialog-info>`},
	} {
		if _, err := ParseDialogInfo([]byte(c.doc)); !errors.Is(err, ErrBadDialogInfo) {
			t.Errorf("%s: %v, want ErrBadDialogInfo", c.name, err)
		}
	}
}

func FuzzParseDialogInfo(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "dialog-info", "*.xml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:a@b"/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDialogInfo(b)
		if err != nil {
			if !errors.Is(err, ErrBadDialogInfo) {
				t.Fatalf("error %v is not ErrBadDialogInfo", err)
			}
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("marshal of a parsed document: %v", err)
		}
		again, err := ParseDialogInfo(out)
		if err != nil {
			t.Fatalf("reparse of our own output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(d, again) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v\n%s", d, again, out)
		}
	})
}
