package e2etest

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
)

// TestLoadAgainstParleyd: parley-load loads a running parleyd given by its
// invite link and process ID, and reports what was delivered and what the
// server spent.
func TestLoadAgainstParleyd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{})
	cmd := exec.Command(loadBin, "run", "--invite", srv.invite, "--server-pid", strconv.Itoa(srv.cmd.Process.Pid),
		"--clients", "40", "--rooms", "4", "--speakers", "2", "--text-rate", "20",
		"--warmup", "500ms", "--duration", "3s", "--json")
	cmd.Env = environ()
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("parley-load: %v\n%s", err, msg)
	}
	var sum struct {
		Server    string  `json:"server"`
		Clients   int     `json:"clients"`
		VoiceSent uint64  `json:"voice_sent"`
		VoiceGot  uint64  `json:"voice_delivered"`
		TextGot   uint64  `json:"text_delivered"`
		P99       int64   `json:"voice_delay_p99_ns"`
		CPU       int64   `json:"server_cpu_ns"`
		RSS       uint64  `json:"server_peak_rss"`
		PerCPU    float64 `json:"delivered_per_server_cpu_s"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("parley-load --json printed %q: %v", out, err)
	}
	t.Logf("%+v", sum)
	// 8 speakers, each heard by the 9 others of its room.
	if sum.Clients != 40 || sum.VoiceSent < 8*50*2 || sum.VoiceGot < sum.VoiceSent*9*9/10 {
		t.Errorf("voice: %d sent, %d delivered; want about 9 deliveries per frame", sum.VoiceSent, sum.VoiceGot)
	}
	if sum.TextGot == 0 || sum.P99 <= 0 {
		t.Errorf("text delivered %d, voice p99 %d ns", sum.TextGot, sum.P99)
	}
	if sum.CPU <= 0 || sum.RSS < 1<<20 {
		t.Errorf("server CPU %d ns, peak RSS %d: not measured", sum.CPU, sum.RSS)
	}
}
