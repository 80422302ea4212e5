package e2etest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay"
)

// waitTimeout bounds every wait for an event. It is only a safety net for a
// hung test: no test relies on it passing.
const waitTimeout = 30 * time.Second

// feed collects the output of a process line by line, parsed into items,
// and wakes waiters on every line. The process's copying goroutine writes;
// tests wait with waitFor.
type feed[T any] struct {
	name  string
	parse func(line string) (T, error)

	mu     sync.Mutex // guards the fields below
	part   []byte     // an incomplete last line
	raw    []string   // every line
	items  []T        // lines that parsed; appended to, never modified
	bad    []string   // lines that did not parse, with the reason
	more   chan struct{}
	closed bool // the process ended and its output is complete
}

func newFeed[T any](name string, parse func(string) (T, error)) *feed[T] {
	return &feed[T]{name: name, parse: parse, more: make(chan struct{})}
}

func (f *feed[T]) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.part = append(f.part, p...)
	for {
		i := bytes.IndexByte(f.part, '\n')
		if i < 0 {
			break
		}
		f.addLocked(string(f.part[:i]))
		f.part = f.part[i+1:]
	}
	if len(f.part) == 0 {
		f.part = nil
	}
	return len(p), nil
}

func (f *feed[T]) addLocked(line string) {
	f.raw = append(f.raw, line)
	if v, err := f.parse(line); err != nil {
		f.bad = append(f.bad, fmt.Sprintf("%q: %v", line, err))
	} else {
		f.items = append(f.items, v)
	}
	close(f.more)
	f.more = make(chan struct{})
}

// finish marks the output complete; it is called once the process has
// exited and its output has been copied.
func (f *feed[T]) finish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.part) > 0 {
		f.addLocked(string(f.part))
		f.part = nil
	}
	f.closed = true
	close(f.more)
	f.more = make(chan struct{})
}

// snapshot returns the items so far and whether the output is complete.
func (f *feed[T]) snapshot() ([]T, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.items, f.closed
}

// next returns the items so far, whether the output is complete, and a
// channel closed when anything changes after that.
func (f *feed[T]) next() ([]T, bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.items, f.closed, f.more
}

func (f *feed[T]) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.raw, "\n")
}

func (f *feed[T]) badLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bad...)
}

// waitFor waits until cond holds for the items so far and returns them. It
// fails the test if the output ends or waitTimeout passes first.
func (f *feed[T]) waitFor(t testing.TB, what string, cond func(items []T) bool) []T {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		items, closed, more := f.items, f.closed, f.more
		f.mu.Unlock()
		if cond(items) {
			return items
		}
		if closed {
			t.Fatalf("%s: output ended before %s", f.name, what)
		}
		select {
		case <-more:
		case <-timer.C:
			t.Fatalf("%s: no %s within %v", f.name, what, waitTimeout)
		}
	}
}

// sink is the output side of a process that a feed can be.
type sink interface {
	io.Writer
	finish()
	text() string
	badLines() []string
}

// proc is a running process with a stdin pipe and parsed outputs.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout sink
	stderr sink
	done   chan struct{} // closed when the process has exited and its output is complete
}

// startProc starts a binary and registers a cleanup that kills it, reports
// a data race in its stderr, and logs its output if the test failed.
func startProc(t testing.TB, name, path string, args, env []string, stdout, stderr sink) *proc {
	t.Helper()
	return startProcFiles(t, name, path, args, env, stdout, stderr, nil)
}

// startProcFiles is startProc with extra open files, which the process
// gets as descriptors 3, 4, ...; the caller closes its copies.
func startProcFiles(t testing.TB, name, path string, args, env []string, stdout, stderr sink, extra []*os.File) *proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		stdout.finish()
		stderr.finish()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		<-p.done
		if strings.Contains(stderr.text(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, stderr.text())
			return
		}
		if t.Failed() {
			t.Logf("---- %s %s\n---- stdout:\n%s\n---- stderr:\n%s", name, strings.Join(args, " "), tail(stdout.text(), 60), tail(stderr.text(), 80))
		}
	})
	return p
}

// tail returns the last n lines of s, each cut to 200 bytes.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	var b strings.Builder
	if len(lines) > n {
		fmt.Fprintf(&b, "[%d lines omitted]\n", len(lines)-n)
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		if len(l) > 200 {
			l = l[:200] + "..."
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL, if it still runs.
func (p *proc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
	}
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling %s: %v", p.name, err)
	}
}

// waitExit waits for the process to end and returns its exit code (-1 when
// a signal ended it).
func (p *proc) waitExit(t testing.TB) int {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		t.Fatalf("%s did not exit within %v", p.name, waitTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// environ is the test's environment without the variables that would
// change what the binaries do, plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PARLEY_PASSWORD", "XDG_CONFIG_HOME", "XDG_DATA_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// ----- parleyd -----

// serverOpts says how to start parleyd. A server restarted with the same
// opts has the same port, data directory and configuration.
type serverOpts struct {
	listen  string            // default 127.0.0.1:0
	dataDir string            // default a new temporary directory
	config  *relay.FileConfig // written to a file for --config; nil: none
	cfgPath string            // set by startServer

	// atFullSpeed runs a parleyd built without the race detector. Under
	// -race, checkptr instruments every pointer step of modernc.org/sqlite
	// (a C-to-Go translation) and parleyd stores about 75 messages a second
	// instead of thousands; the tests that load the server at a named rate
	// use this one, and the relay's in-process tests cover its races.
	atFullSpeed bool
}

// parleydFullSpeed is parleyd without the race detector (serverOpts.atFullSpeed).
var parleydFullSpeed lazyBinary

// server is a running parleyd.
type server struct {
	*proc
	opts   serverOpts
	logs   *feed[logRecord] // its JSON log on stderr
	addr   string           // as printed: "parleyd listening on ADDR"
	fp     string           // as printed: "fingerprint: FP"
	invite string           // as printed: "invite: LINK"
}

// logRecord is one line of parleyd's JSON log.
type logRecord map[string]any

func (r logRecord) str(key string) string {
	s, _ := r[key].(string)
	return s
}

func parseLogRecord(line string) (logRecord, error) {
	var r logRecord
	err := json.Unmarshal([]byte(line), &r)
	return r, err
}

func parseLine(line string) (string, error) { return line, nil }

// startServer starts parleyd and waits for its announcement.
func startServer(t testing.TB, opts serverOpts) *server {
	t.Helper()
	if opts.listen == "" {
		opts.listen = "127.0.0.1:0"
	}
	if opts.dataDir == "" {
		opts.dataDir = t.TempDir()
	}
	if opts.config != nil && opts.cfgPath == "" {
		b, err := json.Marshal(opts.config)
		if err != nil {
			t.Fatal(err)
		}
		opts.cfgPath = filepath.Join(t.TempDir(), "parleyd.json")
		if err := os.WriteFile(opts.cfgPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--listen", opts.listen, "--data", opts.dataDir, "--log-format", "json"}
	if opts.cfgPath != "" {
		args = append(args, "--config", opts.cfgPath)
	}
	out := newFeed("parleyd stdout", parseLine)
	logs := newFeed("parleyd log", parseLogRecord)
	s := &server{opts: opts, logs: logs}
	bin := parleydBin
	if opts.atFullSpeed && raceEnabled {
		bin = parleydFullSpeed.get(t, "github.com/parleychat/parley/cmd/parleyd", false)
	}
	s.proc = startProc(t, "parleyd", bin, args, environ(), out, logs)
	lines := out.waitFor(t, "the invite line", func(lines []string) bool {
		for _, l := range lines {
			if strings.HasPrefix(l, "invite: ") {
				return true
			}
		}
		return false
	})
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "parleyd listening on "); ok {
			s.addr = v
		}
		if v, ok := strings.CutPrefix(l, "fingerprint: "); ok {
			s.fp = v
		}
		if v, ok := strings.CutPrefix(l, "invite: "); ok {
			s.invite = v
		}
	}
	if s.addr == "" || !protocol.ValidFingerprint(s.fp) {
		t.Fatalf("parleyd announced %q, want the address, fingerprint and invite", lines)
	}
	return s
}

// restart starts another parleyd with the same options; the old one must
// have exited.
func (s *server) restart(t testing.TB) *server {
	t.Helper()
	if !s.exited() {
		t.Fatal("restart: the old parleyd still runs")
	}
	return startServer(t, s.opts)
}

// roomInvite returns the invite for another room, with the fingerprint or
// without it.
func (s *server) roomInvite(t testing.TB, room string, withFP bool) string {
	t.Helper()
	inv, err := protocol.ParseInvite(s.invite)
	if err != nil {
		t.Fatalf("ParseInvite(%q) = %v", s.invite, err)
	}
	inv.Room = room
	if !withFP {
		inv.Fingerprint = ""
	}
	return inv.String()
}

// waitLog waits for a log record that matches.
func (s *server) waitLog(t testing.TB, what string, match func(logRecord) bool) logRecord {
	t.Helper()
	var found logRecord
	s.logs.waitFor(t, what, func(recs []logRecord) bool {
		for _, r := range recs {
			if match(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// freePort returns a loopback address with a port that is free now and
// lies below the usual ephemeral range, so that no outgoing connection
// takes it while a server is restarted on it.
func freePort(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port found")
	return ""
}

// hashPassword runs parleyd hash-password.
func hashPassword(t testing.TB, pw string) string {
	t.Helper()
	cmd := exec.Command(parleydBin, "hash-password")
	cmd.Env = environ()
	cmd.Stdin = strings.NewReader(pw + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parleyd hash-password: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// ----- parley-cli -----

// event is one line of parley-cli --json.
type event struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Seq   uint64 `json:"seq"`
	GapTo uint64 `json:"gap_to"`
	From  string `json:"from"`
	To    string `json:"to"`
	Text  string `json:"text"`
	Time  string `json:"time"`
	Mine  bool   `json:"mine"`
	Error string `json:"error"`
	Code  string `json:"code"`
	State string `json:"state"`
	// The "media" summary at the end of a call.
	VoiceSent     uint64   `json:"voice_sent"`
	VideoSent     uint64   `json:"video_sent"`
	KeyframesSent uint64   `json:"keyframes_sent"`
	VoiceReceived uint64   `json:"voice_received"`
	VideoReceived uint64   `json:"video_received"`
	Files         []string `json:"files"`
	EchoCancelled uint64   `json:"echo_cancelled"`
}

func parseEvent(line string) (event, error) {
	var ev event
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		return ev, err
	}
	if ev.Type == "" {
		return ev, fmt.Errorf("no type")
	}
	return ev, nil
}

// client is a running parley-cli join ... --json.
type client struct {
	*proc
	name   string
	home   string // its XDG_CONFIG_HOME
	events *feed[event]
	errs   *feed[string]
}

// startClient starts parley-cli joining invite as name, with its own
// configuration directory home (a new one if empty) and extra flags.
func startClient(t testing.TB, invite, name, home string, flags ...string) *client {
	t.Helper()
	return startClientEnv(t, invite, name, home, nil, flags...)
}

// startClientEnv is startClient with extra environment variables.
func startClientEnv(t testing.TB, invite, name, home string, env []string, flags ...string) *client {
	t.Helper()
	if home == "" {
		home = t.TempDir()
	}
	args := append([]string{"join", invite, "--name", name, "--json"}, flags...)
	c := &client{
		name:   name,
		home:   home,
		events: newFeed("parley-cli "+name, parseEvent),
		errs:   newFeed("parley-cli "+name+" stderr", parseLine),
	}
	c.proc = startProc(t, "parley-cli "+name, cliBin, args, environ(append(env, "XDG_CONFIG_HOME="+home)...), c.events, c.errs)
	t.Cleanup(func() {
		for _, b := range c.events.badLines() {
			t.Errorf("parley-cli %s printed a line that is not a JSON event: %s", name, b)
		}
	})
	return c
}

// send writes lines to the client's standard input.
func (c *client) send(t testing.TB, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(c.stdin, l+"\n"); err != nil {
			t.Fatalf("writing to %s: %v", c.name, err)
		}
	}
}

// closeInput ends the client's standard input: it then waits for its
// messages to be acknowledged, leaves and exits.
func (c *client) closeInput(t testing.TB) {
	t.Helper()
	if err := c.stdin.Close(); err != nil {
		t.Fatalf("closing the input of %s: %v", c.name, err)
	}
}

// waitEvents waits for the n-th (from 1) event that matches and returns
// the events up to and including it.
func (c *client) waitEvents(t testing.TB, what string, n int, match func(event) bool) []event {
	t.Helper()
	var upTo []event
	c.events.waitFor(t, what, func(evs []event) bool {
		k := 0
		for i, ev := range evs {
			if match(ev) {
				if k++; k == n {
					upTo = evs[:i+1]
					return true
				}
			}
		}
		return false
	})
	return upTo
}

// waitConnected waits until the client has joined its room.
func (c *client) waitConnected(t testing.TB) {
	t.Helper()
	c.waitEvents(t, "connected event", 1, isType("connected"))
}

// waitText waits for a text event with this text and returns the events
// up to and including it.
func (c *client) waitText(t testing.TB, text string) []event {
	t.Helper()
	return c.waitEvents(t, fmt.Sprintf("text %q", text), 1, func(ev event) bool {
		return ev.Type == "text" && ev.Text == text
	})
}

// exitWith waits for the client to exit and checks its exit code.
func (c *client) exitWith(t testing.TB, want int) {
	t.Helper()
	if got := c.waitExit(t); got != want {
		t.Fatalf("parley-cli %s exit code = %d, want %d; stderr: %s", c.name, got, want, c.errs.text())
	}
}

func isType(typ string) func(event) bool {
	return func(ev event) bool { return ev.Type == typ }
}

// ofType returns the events of one type.
func ofType(evs []event, typ string) []event {
	var out []event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// count returns how many events match.
func count(evs []event, match func(event) bool) int {
	n := 0
	for _, ev := range evs {
		if match(ev) {
			n++
		}
	}
	return n
}

// checkSeqs checks that sequence numbers strictly increase.
func checkSeqs(t testing.TB, who string, evs []event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Errorf("%s: event %d has seq %d after %d (%q after %q), want strictly increasing",
				who, i, evs[i].Seq, evs[i-1].Seq, evs[i].Text, evs[i-1].Text)
		}
	}
}
