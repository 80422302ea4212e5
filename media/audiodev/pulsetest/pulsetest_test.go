package pulsetest

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parleychat/parley/media/audio"
)

// TestServer starts a daemon, plays a tone into a sink with paplay,
// records its monitor, and checks the cleanup.
func TestServer(t *testing.T) {
	s, err := Start("T1", "T2")
	if errors.Is(err, ErrNotInstalled) {
		t.Fatal(err, "(make deps installs PulseAudio)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Start("X"); err == nil {
		t.Fatal("a second Start in the same process succeeded")
	}
	if os.Getenv("PULSE_SERVER") != "unix:"+s.Socket {
		t.Errorf("PULSE_SERVER = %q", os.Getenv("PULSE_SERVER"))
	}
	rc, err := os.ReadFile(filepath.Join(os.Getenv("HOME"), ".asoundrc"))
	if err != nil || !strings.Contains(string(rc), "pcm.pulse_T2_monitor { type pulse device T2.monitor }") {
		t.Errorf(".asoundrc = %q, %v", rc, err)
	}
	info, err := s.Pactl("info")
	if err != nil || !strings.Contains(info, "Default Sink: T1") {
		t.Errorf("pactl info = %q, %v; want default sink T1", info, err)
	}

	if _, err := exec.LookPath("paplay"); err == nil {
		dir := t.TempDir()
		tone, _ := audio.NewTone(audio.ToneConfig{Frequency: 1000})
		pcm := make([]int16, 48000)
		tone.Generate(pcm)
		f, _ := os.Create(filepath.Join(dir, "tone.wav"))
		audio.WriteWAV(f, pcm, 48000, 1)
		f.Close()
		rec, err := s.Record("T2", filepath.Join(dir, "rec.wav"))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("paplay", "--device=T2", filepath.Join(dir, "tone.wav")).CombinedOutput(); err != nil {
			t.Fatalf("paplay: %v: %s", err, out)
		}
		path, err := rec.Stop()
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := audio.ReadWAVFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if f := audio.DominantFrequency(got, 48000); math.Abs(f-1000) > 1 || audio.LevelDBov(got) < -30 {
			t.Errorf("recorded %d samples at %.2f Hz, %.1f dBov; want 1000 Hz, loud", len(got), f, audio.LevelDBov(got))
		}
	}

	dir, pid := s.Dir, s.cmd.Process.Pid
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close", dir)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !os.IsNotExist(err) {
		t.Errorf("pulseaudio (pid %d) still running after Close", pid)
	}
	if os.Getenv("PULSE_SERVER") == "unix:"+s.Socket {
		t.Errorf("PULSE_SERVER not restored")
	}
	// A new server can start after the old one closed.
	s2, err := Start("T3")
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}
