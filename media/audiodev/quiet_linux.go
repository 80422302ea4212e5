package audiodev

/*
#cgo pkg-config: alsa
#include <alsa/asoundlib.h>

// quietALSA discards libasound's error messages. PortAudio probes every
// PCM that ALSA's configuration names (surround, HDMI, dmix...) when it
// starts, and libasound prints a line to stderr for each one that does not
// exist on this machine: dozens of lines of noise in a terminal that mean
// nothing to a user. Real failures still come back as errors.
static void quietHandler(const char *file, int line, const char *function, int err, const char *fmt, ...) {}
static void quietALSA(void) { snd_lib_error_set_handler(quietHandler); }
*/
import "C"

import (
	"os"
	"syscall"
)

func init() { C.quietALSA() }

// withStderrQuiet runs f with file descriptor 2 pointed at /dev/null.
// PortAudio's JACK host API, probing for a JACK server when PortAudio
// starts, prints half a dozen lines to stderr when there is none (the
// usual case on a desktop with PulseAudio or PipeWire); they mean nothing
// to a user. Only Initialize runs this way, under paMu, for a few
// milliseconds.
func withStderrQuiet(f func() error) error {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return f()
	}
	defer null.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		return f()
	}
	defer syscall.Close(saved)
	if syscall.Dup3(int(null.Fd()), 2, 0) != nil {
		return f()
	}
	defer syscall.Dup3(saved, 2, 0)
	return f()
}
