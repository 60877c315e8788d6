package main

import (
	"path/filepath"
	"testing"
	"time"
)

// TestE2ERecordingSurvivesKill kills a recording phone with SIGKILL in the
// middle of a call: its WAV must still be valid and hold the call's audio
// up to about the last second (the header is updated every second).
func TestE2ERecordingSurvivesKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := addUsers(t, dir, "data", "alice", "bob")
	mustBaton(t, dir, "buddy", "add", "alice", "bob", "--data-dir", "data")
	srv := startAccess(t, "access", dir, "data", "127.0.0.1:0")
	alice := startPhone(t, dir, srv, "alice", "laptop", pw["alice"], phoneOpts{tone: 660, record: "alice.wav", autoAnswer: true})
	bob := startPhone(t, dir, srv, "bob", "mobile", pw["bob"], phoneOpts{tone: 440})
	waitOnlineBuddy(t, dir, bob.admin, "alice/laptop")
	id := dial(t, dir, bob.admin, "alice/laptop")
	waitCallState(t, dir, alice.admin, id, "active")
	// Wait for audio, not for a time: at least 3 s of packets received.
	eventually(t, 20*time.Second, "3 s of audio at alice", func() (bool, string) {
		row := callRow(t, dir, alice.admin, id)
		n := packetsReceived(t, row)
		return n >= 150, row["PACKETS"]
	})
	if err := alice.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-alice.done
	checkHears(t, filepath.Join(dir, "alice.wav"), 440, 2*time.Second)
}
