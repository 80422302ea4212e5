package audiodev

/*
#cgo pkg-config: alsa
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <alsa/asoundlib.h>

// quietALSA discards libasound's error messages. PortAudio probes every
// PCM that ALSA's configuration names (surround, HDMI, dmix...) when it
// starts, and libasound prints a line to stderr for each one that does not
// exist on this machine: dozens of lines of noise in a terminal that mean
// nothing to a user. Real failures still come back as errors.
static void quietHandler(const char *file, int line, const char *function, int err, const char *fmt, ...) {}
static void quietALSA(void) { snd_lib_error_set_handler(quietHandler); }

// quietJACK discards libjack's messages. PortAudio's JACK host API, probing
// for a JACK server when PortAudio starts, makes libjack print half a dozen
// lines to stderr when there is none (the usual case on a desktop with
// PulseAudio or PipeWire). libjack is loaded only as a dependency of the
// PortAudio library, where its build has JACK, so its setters are looked up
// at run time rather than linked.
static void quietMessage(const char *msg) {}
typedef void (*jackSetter)(void (*)(const char *));
static void quietJACK(void) {
	jackSetter set = (jackSetter)dlsym(RTLD_DEFAULT, "jack_set_error_function");
	if (set) set(quietMessage);
	set = (jackSetter)dlsym(RTLD_DEFAULT, "jack_set_info_function");
	if (set) set(quietMessage);
}
*/
import "C"

func init() { C.quietALSA() }

// initQuietly runs PortAudio's Initialize (f) with libjack's messages
// discarded. (An earlier version pointed file descriptor 2 at /dev/null
// for the call, which swallowed whatever else the process printed
// meanwhile — an error the app was reporting as it exited, say.)
func initQuietly(f func() error) error {
	C.quietJACK()
	return f()
}
