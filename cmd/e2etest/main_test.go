package e2etest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/parleychat/parley/media/audiodev/pulsetest"
	"github.com/parleychat/parley/relay/relaytest"
)

// Paths of the binaries TestMain builds.
var (
	parleydBin string
	cliBin     string
	loadBin    string
)

// pulse is a private PulseAudio daemon with null sinks A and B, whose
// environment every parley-cli started here inherits; nil when PulseAudio
// is missing (the tests that need it then fail).
var pulse *pulsetest.Server

func TestMain(m *testing.M) {
	var err error
	pulse, err = pulsetest.Start("A", "B")
	if err != nil && !errors.Is(err, pulsetest.ErrNotInstalled) {
		fmt.Fprintln(os.Stderr, "e2etest:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2etest:", err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2etest: building the binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	parleydBin = filepath.Join(dir, "parleyd")
	cliBin = filepath.Join(dir, "parley-cli")
	loadBin = filepath.Join(dir, "parley-load")
	code := m.Run()
	os.RemoveAll(dir)
	if pulse != nil {
		pulse.Close() // before the leak check: its goroutine waits for the daemon
	}
	if code == 0 {
		if err := goleak.Find(relaytest.IgnoreLinkLeaks); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build compiles parleyd, parley-cli and parley-load into dir, with the race detector
// when this test binary has it.
func build(dir string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/parleychat/parley/cmd/parleyd", "github.com/parleychat/parley/cmd/parley-cli",
		"github.com/parleychat/parley/cmd/parley-load")
	cmd := exec.Command(goTool(), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return nil
}

// lazyBinary is a binary built on first use, so that only the tests that
// need it pay for its build.
type lazyBinary struct {
	once sync.Once
	path string
	err  error
}

// get builds pkg (with the race detector if race) into the directory of the
// other binaries, once, and returns its path.
func (b *lazyBinary) get(t testing.TB, pkg string, race bool) string {
	t.Helper()
	b.once.Do(func() {
		dir := filepath.Join(filepath.Dir(cliBin), "lazy-"+path.Base(pkg))
		if race {
			dir += "-race"
		}
		args := []string{"build", "-o", dir + string(filepath.Separator)}
		if race {
			args = append(args, "-race")
		}
		args = append(args, pkg)
		if out, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %v: %w\n%s", args, err, out)
			return
		}
		b.path = filepath.Join(dir, path.Base(pkg))
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return b.path
}

// goTool returns the go command of the toolchain running the tests.
func goTool() string {
	for _, root := range []string{os.Getenv("GOROOT"), runtime.GOROOT()} {
		if root == "" {
			continue
		}
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
