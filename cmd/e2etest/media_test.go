package e2etest

import (
	"bytes"
	"encoding/binary"
	"image"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/video"
)

// ffmpegErrors decodes a file with ffmpeg and returns what it complained
// about (nothing, for a good file).
func ffmpegErrors(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// maxDecodedPictures bounds what decodeVideo reads from ffmpeg.
const maxDecodedPictures = 2000

// decodeVideo decodes an IVF file with ffmpeg into I420 pictures of w×h,
// one per frame in the file. (Our IVF files count time in milliseconds;
// without -fps_mode passthrough, ffmpeg would make raw video of 1000
// pictures a second, repeating each frame to fill the time between.)
func decodeVideo(t testing.TB, path string, w, h int) []*image.YCbCr {
	t.Helper()
	size := w*h + 2*((w+1)/2)*((h+1)/2)
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(stdout, int64(size)*(maxDecodedPictures+1)))
	if err != nil {
		t.Fatalf("reading ffmpeg's output: %v", err)
	}
	if len(out) > size*maxDecodedPictures {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("ffmpeg decoded more than %d pictures from %s", maxDecodedPictures, path)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg decoding %s: %v", path, err)
	}
	if len(out)%size != 0 {
		t.Fatalf("ffmpeg gave %d bytes, not a whole number of %dx%d pictures", len(out), w, h)
	}
	var pics []*image.YCbCr
	for ; len(out) > 0; out = out[size:] {
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		n := copy(img.Y, out[:w*h])
		n += copy(img.Cb, out[n:])
		copy(img.Cr, out[n:size])
		pics = append(pics, img)
	}
	return pics
}

// decodeAudio decodes a file with ffmpeg into 48 kHz mono samples.
func decodeAudio(t testing.TB, path string) []int16 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg decoding %s: %v", path, err)
	}
	pcm := make([]int16, len(out)/2)
	binary.Read(bytes.NewReader(out), binary.LittleEndian, pcm)
	return pcm
}

// mediaSummary returns the "media" event a client printed as it ended.
func mediaSummary(t testing.TB, c *client) event {
	t.Helper()
	evs, _ := c.events.snapshot()
	for _, ev := range evs {
		if ev.Type == "media" {
			return ev
		}
	}
	t.Fatalf("%s printed no media summary", c.name)
	return event{}
}

// TestVideoAndVoiceEndToEnd: alice sends the test pattern and a 440 Hz
// tone through parleyd for 5 s; bob records. ffmpeg decodes bob's files
// without complaint; bob has at least 90 % of what alice sent; his audio's
// dominant frequency is 440 Hz; his video matches what alice sent, frame
// by frame, at 30 dB PSNR or better.
func TestVideoAndVoiceEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{})
	dir := t.TempDir()
	bob := startClient(t, srv.invite, "bob", "", "--record", dir)
	bob.waitConnected(t)
	alice := startClient(t, srv.invite, "alice", "", "--send-video", "testpattern", "--send-audio", "tone", "--duration", "5s")
	alice.exitWith(t, 0)
	sent := mediaSummary(t, alice)
	bob.waitEvents(t, "alice leaving", 1, func(ev event) bool { return ev.Type == "leave" && ev.From == "alice" })
	bob.send(t, "/quit")
	bob.exitWith(t, 0)
	got := mediaSummary(t, bob)
	t.Logf("alice sent %d voice and %d video frames (%d keyframes); bob received %d and %d",
		sent.VoiceSent, sent.VideoSent, sent.KeyframesSent, got.VoiceReceived, got.VideoReceived)
	if sent.VideoSent < 100 || sent.VoiceSent < 200 {
		t.Fatalf("alice sent %d video and %d voice frames in 5 s, want about 150 and 250", sent.VideoSent, sent.VoiceSent)
	}

	ivf, ogg := filepath.Join(dir, "alice.ivf"), filepath.Join(dir, "alice.ogg")
	for _, f := range []string{ivf, ogg} {
		if msg := ffmpegErrors(t, f); msg != "" {
			t.Errorf("ffmpeg decoding %s: %s", f, msg)
		}
	}

	// Video: every picture carries its capture stamp; regenerate what
	// alice sent from it and compare.
	pics := decodeVideo(t, ivf, 640, 360)
	if uint64(len(pics))*10 < sent.VideoSent*9 {
		t.Errorf("bob's recording has %d of the %d frames alice sent, want 90%%", len(pics), sent.VideoSent)
	}
	ref := video.NewI420(640, 360)
	var sum, worst float64
	var last uint64
	worst = 1000
	for i, p := range pics {
		captured, frame, ok := video.ReadStamp(p)
		if !ok {
			t.Fatalf("picture %d of bob's recording has no readable stamp", i)
		}
		if i > 0 && frame <= last {
			t.Errorf("picture %d is frame %d, after frame %d", i, frame, last)
		}
		last = frame
		video.Render(ref, frame, captured)
		psnr := video.PSNR(p, ref)
		sum += psnr
		worst = min(worst, psnr)
	}
	mean := sum / float64(len(pics))
	t.Logf("bob's video: %d pictures, PSNR mean %.1f dB, worst %.1f dB", len(pics), mean, worst)
	if mean < 30 {
		t.Errorf("PSNR of bob's video against what alice sent = %.1f dB, want at least 30", mean)
	}

	// Voice: the tone, for about as long as alice sent it.
	pcm := decodeAudio(t, ogg)
	secs := float64(len(pcm)) / 48000
	if secs*50 < float64(sent.VoiceSent)*0.9 {
		t.Errorf("bob's recording is %.2f s of audio; alice sent %d frames (%.2f s)", secs, sent.VoiceSent, float64(sent.VoiceSent)/50)
	}
	if f := audio.DominantFrequency(pcm, 48000); f < 435 || f > 445 {
		t.Errorf("the dominant frequency of bob's audio is %.1f Hz, want 440 ± 5", f)
	}
	if got.VoiceReceived*10 < sent.VoiceSent*9 {
		t.Errorf("bob received %d of %d voice frames", got.VoiceReceived, sent.VoiceSent)
	}
}

// TestVoiceThroughDevices is the PortAudio path end to end: a tone played
// into null sink A; alice's microphone is A's monitor; her voice goes
// through parleyd to bob, who plays it into sink B; B's monitor is
// recorded, and the tone must be there.
func TestVoiceThroughDevices(t *testing.T) {
	if pulse == nil {
		t.Fatal("PulseAudio is not installed: run make deps (make test does)")
	}
	srv := startServer(t, serverOpts{})
	recB, err := pulse.Record("B", filepath.Join(t.TempDir(), "b.wav"))
	if err != nil {
		t.Fatal(err)
	}
	bob := startClient(t, srv.invite, "bob", "", "--speaker", pulse.PlaybackDevice("B"))
	bob.waitConnected(t)
	alice := startClient(t, srv.invite, "alice", "", "--send-audio", "mic:"+pulse.MonitorDevice("A"), "--duration", "6s")
	alice.waitConnected(t)

	// The tone, into A, for 4 s, played by paplay from a WAV file.
	tone, err := audio.NewTone(audio.ToneConfig{Frequency: 440})
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 4*48000)
	for i := 0; i < len(pcm); i += 960 {
		tone.Generate(pcm[i : i+960])
	}
	wav := filepath.Join(t.TempDir(), "tone.wav")
	var b bytes.Buffer
	if err := audio.WriteWAV(&b, pcm, 48000, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wav, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	play := exec.Command("paplay", "--device=A", wav)
	play.Env = os.Environ()
	if out, err := play.CombinedOutput(); err != nil {
		t.Fatalf("paplay: %v\n%s", err, out)
	}
	alice.exitWith(t, 0)
	bob.send(t, "/quit")
	bob.exitWith(t, 0)
	path, err := recB.Stop()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := audio.ReadWAVFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the part where the tone played: the loudest 3 s.
	loud := loudest(got, 3*48000)
	level := audio.LevelDBov(loud)
	f := audio.DominantFrequency(loud, 48000)
	t.Logf("sink B recorded %.2f s; its loudest 3 s at %.1f dBov, dominant frequency %.2f Hz",
		float64(len(got))/48000, level, f)
	if level < -40 {
		t.Fatalf("sink B's recording is silent (%.1f dBov): the voice did not arrive", level)
	}
	if f < 435 || f > 445 {
		t.Errorf("the dominant frequency played into sink B is %.1f Hz, want 440 ± 5", f)
	}
}

// TestEchoCancelledEndToEnd: bob listens on a speaker his microphone hears
// (null sink B and its monitor), as with laptop speakers, while alice
// talks (espeak-ng's speech from a WAV file) and records what bob sends.
// With parley-cli's default echo cancellation, what comes back from bob
// is much quieter than with --echo-cancel=false, where alice hears herself.
//
// It is judged over 100 ms blocks, after 4 s of learning: most of the
// time (4 blocks in 5) the echo must be at least 20 dB under the echo
// without the canceller. A canceller that does not work, or learns too
// slowly, fails that; a moment when the echo moves (a device's overrun
// on a loaded machine) and the canceller learns again for a few hundred
// milliseconds does not, and is logged.
func TestEchoCancelledEndToEnd(t *testing.T) {
	if pulse == nil {
		t.Fatal("PulseAudio is not installed: run make deps (make test does)")
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is not installed: run make deps (make test does)")
	}
	speech := filepath.Join(t.TempDir(), "alice.wav")
	text := "When you listen to a call on the speakers of a laptop, the microphone hears everything the others say " +
		"and sends it straight back to them. An echo canceller learns the path from the speaker to the microphone, " +
		"and subtracts what it predicts. It needs a few seconds of speech to learn."
	if out, err := exec.Command("espeak-ng", "-v", "en-us", "-w", speech, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	// back returns what alice recorded of bob after the first 4 s (while
	// the canceller learns), and bob's summary.
	back := func(flags ...string) ([]int16, event) {
		srv := startServer(t, serverOpts{})
		dir := t.TempDir()
		bob := startClient(t, srv.invite, "bob", "", append([]string{"--send-audio", "mic:" + pulse.MonitorDevice("B"),
			"--speaker", pulse.PlaybackDevice("B")}, flags...)...)
		bob.waitConnected(t)
		alice := startClient(t, srv.invite, "alice", "", "--send-audio", speech, "--record", dir, "--duration", "10s")
		alice.waitConnected(t)
		alice.exitWith(t, 0)
		bob.send(t, "/quit")
		bob.exitWith(t, 0)
		pcm := decodeAudio(t, filepath.Join(dir, "bob.ogg"))
		if len(pcm) < 8*48000 {
			t.Fatalf("alice recorded %.1f s of bob, want about 10", float64(len(pcm))/48000)
		}
		return pcm[4*48000:], mediaSummary(t, bob)
	}
	sent, _, err := audio.ReadWAVFile(speech)
	if err != nil {
		t.Fatal(err)
	}
	level := audio.LevelDBov(sent[4*48000 : 10*48000])
	onPCM, onSummary := back()
	offPCM, offSummary := back("--echo-cancel=false")
	on, off := audio.LevelDBov(onPCM), audio.LevelDBov(offPCM)
	onBlocks := blockLevels(onPCM, 4800)
	on80 := percentile(onBlocks, 0.8)
	var through int // blocks with the echo less than 10 dB under the echo without
	for _, l := range onBlocks {
		if l > off-10 {
			through++
		}
	}
	t.Logf("alice said %.1f dBov; what came back from bob: %.1f dBov with echo cancellation (%d frames cleaned; 100 ms blocks: median %.1f, 80th percentile %.1f, %d of %d within 10 dB of no cancellation), %.1f dBov without",
		level, on, onSummary.EchoCancelled, percentile(onBlocks, 0.5), on80, through, len(onBlocks), off)
	if onSummary.EchoCancelled == 0 || offSummary.EchoCancelled != 0 {
		t.Errorf("bob's echo canceller cleaned %d microphone frames by default and %d with --echo-cancel=false, want some and none",
			onSummary.EchoCancelled, offSummary.EchoCancelled)
	}
	if off < level-6 {
		t.Errorf("without echo cancellation alice's voice came back at %.1f dBov, want about her %.1f dBov: the room does not echo", off, level)
	}
	if off-on80 < 20 {
		t.Errorf("echo cancellation lowered what came back by %.1f dB in 4 of 5 blocks of 100 ms (by %.1f dB overall), want at least 20", off-on80, off-on)
	}
}

// blockLevels returns the level, in dBov, of each whole n-sample block of
// pcm.
func blockLevels(pcm []int16, n int) []float64 {
	var levels []float64
	for i := 0; i+n <= len(pcm); i += n {
		levels = append(levels, audio.LevelDBov(pcm[i:i+n]))
	}
	return levels
}

// percentile returns the p-th quantile (0..1) of levels, by the nearest
// rank; -inf for none.
func percentile(levels []float64, p float64) float64 {
	if len(levels) == 0 {
		return math.Inf(-1)
	}
	s := slices.Sorted(slices.Values(levels))
	return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]
}

// loudest returns the n-sample window of pcm with the most energy (all of
// pcm when it is shorter).
func loudest(pcm []int16, n int) []int16 {
	if len(pcm) <= n {
		return pcm
	}
	var e, best float64
	at := 0
	for i, v := range pcm {
		e += float64(v) * float64(v)
		if i >= n {
			e -= float64(pcm[i-n]) * float64(pcm[i-n])
		}
		if i >= n-1 && e > best {
			best, at = e, i-n+1
		}
	}
	return pcm[at : at+n]
}

// TestFileSources: alice sends a Y4M file and a WAV file (a 660 Hz tone at
// 44.1 kHz stereo, converted on the way); bob records both, and the
// recording holds the file's pictures and its tone.
func TestFileSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 2 s of the test pattern at 320x180, 30 fps, as Y4M.
	y4m := filepath.Join(dir, "clip.y4m")
	f, err := os.Create(y4m)
	if err != nil {
		t.Fatal(err)
	}
	w, err := video.NewY4MWriter(f, video.Y4MHeader{Width: 320, Height: 180, RateNum: 30, RateDen: 1})
	if err != nil {
		t.Fatal(err)
	}
	pic := video.NewI420(320, 180)
	start := time.Unix(1700000000, 0)
	for i := range 60 {
		video.Render(pic, uint64(i), start.Add(time.Duration(i)*time.Second/30))
		if err := w.WriteFrame(pic); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// 2.5 s of 660 Hz at 44.1 kHz, stereo.
	wav := filepath.Join(dir, "tone.wav")
	pcm := make([]int16, 2*44100*5/2)
	for i := 0; i < len(pcm); i += 2 {
		v := int16(12000 * math.Sin(2*math.Pi*660*float64(i/2)/44100))
		pcm[i], pcm[i+1] = v, v
	}
	var b bytes.Buffer
	if err := audio.WriteWAV(&b, pcm, 44100, 2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wav, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	srv := startServer(t, serverOpts{})
	rec := filepath.Join(dir, "rec")
	bob := startClient(t, srv.invite, "bob", "", "--record", rec)
	bob.waitConnected(t)
	alice := startClient(t, srv.invite, "alice", "", "--send-video", y4m, "--send-audio", wav, "--duration", "3500ms")
	alice.exitWith(t, 0)
	sent := mediaSummary(t, alice)
	bob.waitEvents(t, "alice leaving", 1, func(ev event) bool { return ev.Type == "leave" && ev.From == "alice" })
	bob.send(t, "/quit")
	bob.exitWith(t, 0)
	// A file plays in real time, like a camera: a frame the sender was
	// too busy to take when it was due (the encoder's start) is skipped.
	if sent.VideoSent < 54 {
		t.Errorf("alice sent %d frames of a 60-frame file", sent.VideoSent)
	}
	pics := decodeVideo(t, filepath.Join(rec, "alice.ivf"), 320, 180)
	var frames []uint64
	for _, p := range pics {
		if _, n, ok := video.ReadStamp(p); ok {
			frames = append(frames, n)
		}
	}
	if len(frames) < 54 || frames[len(frames)-1] != 59 {
		t.Errorf("bob's recording has stamped frames %v, want (nearly) 0 to 59", frames)
	}
	got := decodeAudio(t, filepath.Join(rec, "alice.ogg"))
	if f := audio.DominantFrequency(got, 48000); f < 655 || f > 665 {
		t.Errorf("the dominant frequency of bob's recording is %.1f Hz, want 660 ± 5", f)
	}
	if secs := float64(len(got)) / 48000; secs < 2.3 || secs > 2.8 {
		t.Errorf("bob's recording of a 2.5 s file is %.2f s long", secs)
	}
}
