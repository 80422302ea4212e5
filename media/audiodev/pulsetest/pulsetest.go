// Package pulsetest runs a private PulseAudio daemon for tests that play
// and record through real audio devices, with PortAudio (ALSA host API)
// seeing its sinks by name. Any package's tests can use it (media/audiodev's
// TestChain is an example:
// Playback into sink A, Capture from A's monitor, Opus, Playback into B,
// Record B).
//
// Start sets up, in a fresh temporary directory D:
//
//   - D/home, D/run, D/run/pulse and D/state: the daemon's and the
//     clients' HOME, XDG_RUNTIME_DIR, PULSE_RUNTIME_PATH and
//     PULSE_STATE_PATH, so that nothing is read from or written to the
//     real user's PulseAudio state;
//
//   - the daemon, as a child process, running
//
//     pulseaudio -n --daemonize=no --system=false --exit-idle-time=-1
//     --disallow-exit --use-pid-file=no --disable-shm=yes --realtime=no
//     --high-priority=no --log-target=stderr
//     --load="module-native-protocol-unix socket=D/native auth-anonymous=1"
//     --load="module-null-sink sink_name=NAME rate=48000 channels=1 format=s16le
//     sink_properties=device.description=NAME"   (one per sink)
//
//     -n skips the default script, so there is no hardware, no D-Bus and
//     no X11 module; it runs as root (PulseAudio warns, then works) and
//     the first sink is the default sink, its monitor the default source;
//
//   - D/home/.asoundrc, which makes ALSA (libasound2-plugins' pulse
//     plugin) talk to the daemon:
//
//     pcm.!default { type pulse }   ctl.!default { type pulse }
//     pcm.pulse_NAME { type pulse device NAME }                   (plays into sink NAME)
//     pcm.pulse_NAME_monitor { type pulse device NAME.monitor }   (records what NAME plays)
//
// and sets, in this process's environment (restored by Close), HOME=D/home
// (where ALSA finds .asoundrc), PULSE_SERVER=unix:D/native,
// XDG_RUNTIME_DIR, PULSE_RUNTIME_PATH, PULSE_STATE_PATH, and
// JACK_NO_START_SERVER=1 (PortAudio also probes JACK). It waits for the
// daemon by polling it with `pactl info` until it answers and lists every
// sink, never by sleeping a fixed time. Close stops the daemon (SIGTERM,
// then SIGKILL), waits for it and removes D.
//
// Because PortAudio and ALSA read the environment when PortAudio is
// initialised, and the environment belongs to the whole process, only one
// Server runs at a time: start it in TestMain, before any test opens a
// device, and close it after m.Run. PlaybackDevice and MonitorDevice give
// the PortAudio device names; Record captures a sink's monitor into a WAV
// file with parecord, independently of PortAudio.
//
//	var pulse *pulsetest.Server
//
//	func TestMain(m *testing.M) { pulsetest.Main(m, &pulse, "A", "B") }
package pulsetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned by Start when pulseaudio, pactl or parecord
// is not on PATH (make deps installs them).
var ErrNotInstalled = errors.New("pulsetest: PulseAudio is not installed")

// StartTimeout bounds how long Start waits for the daemon to answer.
const StartTimeout = 15 * time.Second

var (
	mu      sync.Mutex
	running *Server // the one Server of the process
)

var sinkName = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// Server is a running private PulseAudio daemon.
type Server struct {
	Dir    string // the temporary directory that holds everything
	Socket string // the daemon's native protocol socket

	sinks   []string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the daemon has exited
	waitErr error         // the daemon's exit status, valid once exited is closed
	log     *logBuffer    // the daemon's stderr
	env     map[string]*string
	once    sync.Once
}

// envVars are the variables Start sets; Close restores them.
var envVars = []string{"HOME", "PULSE_SERVER", "XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH", "JACK_NO_START_SERVER"}

// Start starts a daemon with one null sink per name (letters, digits and
// '_'; at least one) and points this process's ALSA and PulseAudio
// clients at it.
func Start(sinks ...string) (*Server, error) {
	for _, tool := range []string{"pulseaudio", "pactl", "parecord"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: no %s", ErrNotInstalled, tool)
		}
	}
	if len(sinks) == 0 {
		return nil, errors.New("pulsetest: Start needs at least one sink")
	}
	for _, s := range sinks {
		if !sinkName.MatchString(s) {
			return nil, fmt.Errorf("pulsetest: bad sink name %q", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if running != nil {
		return nil, errors.New("pulsetest: a server is already running in this process")
	}
	dir, err := os.MkdirTemp("", "pulsetest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "native"), sinks: sinks, exited: make(chan struct{}), log: new(logBuffer)}
	if err := s.start(); err != nil {
		s.stop()
		return nil, err
	}
	running = s
	return s, nil
}

func (s *Server) start() error {
	home, run, state := filepath.Join(s.Dir, "home"), filepath.Join(s.Dir, "run"), filepath.Join(s.Dir, "state")
	for _, d := range []string{home, filepath.Join(run, "pulse"), state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var rc strings.Builder
	rc.WriteString("pcm.!default { type pulse }\nctl.!default { type pulse }\n")
	for _, n := range s.sinks {
		fmt.Fprintf(&rc, "pcm.%s { type pulse device %s }\n", s.PlaybackDevice(n), n)
		fmt.Fprintf(&rc, "pcm.%s { type pulse device %s.monitor }\n", s.MonitorDevice(n), n)
	}
	if err := os.WriteFile(filepath.Join(home, ".asoundrc"), []byte(rc.String()), 0o600); err != nil {
		return err
	}

	args := []string{
		"-n", "--daemonize=no", "--system=false", "--exit-idle-time=-1", "--disallow-exit",
		"--use-pid-file=no", "--disable-shm=yes", "--realtime=no", "--high-priority=no",
		"--log-target=stderr",
		"--load=module-native-protocol-unix socket=" + s.Socket + " auth-anonymous=1",
	}
	for _, n := range s.sinks {
		args = append(args, fmt.Sprintf("--load=module-null-sink sink_name=%s rate=48000 channels=1 format=s16le sink_properties=device.description=%s", n, n))
	}
	env := map[string]string{
		"HOME":                 home,
		"XDG_RUNTIME_DIR":      run,
		"PULSE_RUNTIME_PATH":   filepath.Join(run, "pulse"),
		"PULSE_STATE_PATH":     state,
		"PULSE_SERVER":         "unix:" + s.Socket,
		"JACK_NO_START_SERVER": "1",
	}
	s.cmd = exec.Command("pulseaudio", args...)
	s.cmd.Env = mergeEnv(os.Environ(), env)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("pulsetest: start pulseaudio: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	// This process's clients (pactl below, ALSA, PortAudio) use the
	// daemon from now on.
	s.env = map[string]*string{}
	for _, k := range envVars {
		if v, ok := os.LookupEnv(k); ok {
			s.env[k] = &v
		} else {
			s.env[k] = nil
		}
		os.Setenv(k, env[k])
	}
	return s.waitReady()
}

// waitReady polls the daemon until it answers and has every sink.
func (s *Server) waitReady() error {
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if out, err := s.pactl("list", "short", "sinks"); err == nil && s.hasSinks(out) {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("pulsetest: pulseaudio exited (%v): %s", s.waitErr, s.log.String())
		case <-deadline.C:
			return fmt.Errorf("pulsetest: pulseaudio did not answer within %v: %s", StartTimeout, s.log.String())
		case <-tick.C:
		}
	}
}

func (s *Server) hasSinks(list string) bool {
	have := map[string]bool{}
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			have[f[1]] = true
		}
	}
	for _, n := range s.sinks {
		if !have[n] {
			return false
		}
	}
	return true
}

// pactl runs pactl against the daemon and returns its output.
func (s *Server) pactl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pactl", args...)
	cmd.Env = mergeEnv(os.Environ(), map[string]string{"PULSE_SERVER": "unix:" + s.Socket})
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pactl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Pactl runs pactl with args against the daemon and returns its output.
func (s *Server) Pactl(args ...string) (string, error) { return s.pactl(args...) }

func mergeEnv(base []string, set map[string]string) []string {
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// Sinks returns the sink names.
func (s *Server) Sinks() []string { return append([]string(nil), s.sinks...) }

// PlaybackDevice returns the ALSA PCM (and PortAudio device) name that
// plays into sink.
func (s *Server) PlaybackDevice(sink string) string { return "pulse_" + sink }

// MonitorDevice returns the ALSA PCM (and PortAudio device) name that
// records what sink plays.
func (s *Server) MonitorDevice(sink string) string { return "pulse_" + sink + "_monitor" }

// Log returns what the daemon has written to its stderr so far.
func (s *Server) Log() string { return s.log.String() }

// logBuffer is the daemon's stderr, written by exec's copying goroutine
// and read by Log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Close stops the daemon, removes its directory and restores the
// environment. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		mu.Lock()
		defer mu.Unlock()
		err = s.stop()
		if running == s {
			running = nil
		}
	})
	return err
}

func (s *Server) stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	for k, v := range s.env {
		if v == nil {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, *v)
		}
	}
	return os.RemoveAll(s.Dir)
}

// Recording is a sink's monitor being recorded by parecord.
type Recording struct {
	cmd    *exec.Cmd
	path   string
	stderr bytes.Buffer
	done   chan error
}

// Record starts recording what sink plays, as 48 kHz mono 16-bit WAV, into
// path. It returns once the recording stream is connected to the daemon
// (polled with pactl), so nothing played after it returns is missed.
func (s *Server) Record(sink, path string) (*Recording, error) {
	before, err := s.sourceOutputs()
	if err != nil {
		return nil, err
	}
	r := &Recording{path: path, done: make(chan error, 1)}
	r.cmd = exec.Command("parecord", "--device="+sink+".monitor", "--rate=48000", "--channels=1",
		"--format=s16le", "--file-format=wav", "--latency-msec=20", path)
	r.cmd.Env = mergeEnv(os.Environ(), map[string]string{"PULSE_SERVER": "unix:" + s.Socket})
	r.cmd.Stderr = &r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("pulsetest: start parecord: %w", err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if now, err := s.sourceOutputs(); err == nil && now > before {
			return r, nil
		}
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("pulsetest: parecord exited (%v): %s", err, r.stderr.String())
		case <-deadline.C:
			r.cmd.Process.Kill()
			<-r.done
			return nil, fmt.Errorf("pulsetest: parecord did not connect within %v", StartTimeout)
		case <-tick.C:
		}
	}
}

// sourceOutputs counts the recording streams connected to the daemon.
func (s *Server) sourceOutputs() (int, error) {
	out, err := s.pactl("list", "short", "source-outputs")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n, nil
}

// Stop ends the recording (parecord finishes the WAV header on SIGINT)
// and returns the file's path.
func (r *Recording) Stop() (string, error) {
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-r.done:
		if err != nil && !isSignalExit(err) {
			return r.path, fmt.Errorf("pulsetest: parecord: %v: %s", err, r.stderr.String())
		}
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		return r.path, errors.New("pulsetest: parecord did not stop on SIGINT")
	}
	return r.path, nil
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}
