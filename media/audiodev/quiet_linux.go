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

func init() { C.quietALSA() }
