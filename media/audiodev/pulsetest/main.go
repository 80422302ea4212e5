package pulsetest

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main is a TestMain for a package whose tests play through PulseAudio: it
// starts a daemon with the given sinks into *srv, runs the tests, closes
// the daemon (before the leak check: its goroutine waits for the daemon),
// fails the run if goroutines leaked, and exits. Where PulseAudio is not
// installed *srv stays nil and the tests still run; those that need it
// should fail saying so.
func Main(m *testing.M, srv **Server, sinks ...string) {
	var err error
	*srv, err = Start(sinks...)
	if err != nil && !errors.Is(err, ErrNotInstalled) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if *srv != nil {
		(*srv).Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
