package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/media/audio"
	"github.com/parleychat/parley/media/audiodev"
	"github.com/parleychat/parley/media/device"
	"github.com/parleychat/parley/media/opus"
	"github.com/parleychat/parley/media/pipeline"
	"github.com/parleychat/parley/media/speexdsp"
	"github.com/parleychat/parley/media/video"
	"github.com/parleychat/parley/media/vpx"
)

// mediaOptions are the voice and video flags.
type mediaOptions struct {
	sendVideo    string // testpattern, camera, camera:/dev/videoN, screen, or a .y4m file
	sendAudio    string // tone, tone:HZ, mic, or a .wav file
	record       string // directory for received streams
	play         bool   // play received voice
	speaker      string // the device to play on; "": the default
	duration     time.Duration
	videoBitrate int  // bits per second; 0: the pipeline's default
	echoCancel   bool // clean the microphone of the speaker's echo, when both are used
}

// active reports whether any media flag was given.
func (o *mediaOptions) active() bool {
	return o.sendVideo != "" || o.sendAudio != "" || o.record != "" || o.play || o.speaker != ""
}

// openVideo opens a --send-video source.
func openVideo(spec string) (media.VideoSource, error) {
	switch {
	case spec == "testpattern":
		return video.NewTestPattern(video.PatternConfig{})
	case spec == "camera" || strings.HasPrefix(spec, "camera:"):
		return openCamera(strings.TrimPrefix(strings.TrimPrefix(spec, "camera"), ":"))
	case spec == "screen":
		return openScreen()
	case strings.HasSuffix(strings.ToLower(spec), ".y4m"):
		return video.OpenY4M(spec, video.Y4MOptions{})
	}
	return nil, fmt.Errorf("--send-video %q: want testpattern, camera, camera:/dev/videoN, screen or a .y4m file", spec)
}

// openAudio opens a --send-audio source.
func openAudio(spec string) (media.AudioSource, error) {
	switch {
	case spec == "tone":
		return audio.NewTone(audio.ToneConfig{})
	case strings.HasPrefix(spec, "tone:"):
		hz, err := strconv.ParseFloat(strings.TrimPrefix(spec, "tone:"), 64)
		if err != nil {
			return nil, fmt.Errorf("--send-audio %q: the frequency must be a number of Hz", spec)
		}
		return audio.NewTone(audio.ToneConfig{Frequency: hz})
	case spec == "mic" || strings.HasPrefix(spec, "mic:"):
		return audiodev.OpenCapture(audiodev.Config{Device: strings.TrimPrefix(strings.TrimPrefix(spec, "mic"), ":")})
	case strings.HasSuffix(strings.ToLower(spec), ".wav"):
		return audio.OpenWAV(spec, audio.WAVConfig{})
	}
	return nil, fmt.Errorf("--send-audio %q: want tone, tone:HZ, mic, mic:DEVICE or a .wav file", spec)
}

// callParts are what newCall makes besides the call: the recorder (nil
// without --record) and the echo canceller (nil unless a microphone and
// a speaker are both used and --echo-cancel is on), which the caller
// closes after the call's Run.
type callParts struct {
	rec  *pipeline.Recorder
	echo *speexdsp.Canceller
}

// newCall opens the sources and devices the flags name and returns the
// call that runs them. On error nothing is left open.
func newCall(o mediaOptions, log *slog.Logger) (call *pipeline.Call, parts callParts, err error) {
	cfg := pipeline.Config{
		NewAudioEncoder: func() (media.AudioEncoder, error) { return opus.NewEncoder(opus.Config{}) },
		NewVideoEncoder: func(screen bool) (media.VideoEncoder, error) {
			return vpx.NewEncoder(vpx.Config{Bitrate: o.videoBitrate, Screen: screen})
		},
		VideoBitrate: o.videoBitrate,
		Logger:       log,
	}
	defer func() {
		if err != nil {
			for _, c := range []interface{ Close() error }{cfg.Camera, cfg.Screen, cfg.Audio, cfg.Speaker} {
				if c != nil {
					c.Close()
				}
			}
			if parts.echo != nil {
				parts.echo.Close()
			}
		}
	}()
	if o.sendVideo != "" {
		src, err := openVideo(o.sendVideo)
		if err != nil {
			return nil, parts, err
		}
		if o.sendVideo == "screen" {
			cfg.Screen = src
		} else {
			cfg.Camera = src
		}
	}
	if o.sendAudio != "" {
		src, err := openAudio(o.sendAudio)
		if err != nil {
			return nil, parts, err
		}
		cfg.Audio = src
	}
	if o.play || o.speaker != "" {
		speaker, err := audiodev.OpenPlayback(audiodev.Config{Device: o.speaker})
		if err != nil {
			return nil, parts, err
		}
		cfg.Speaker = speaker
		cfg.NewAudioDecoder = func() (media.AudioDecoder, error) { return opus.NewDecoder() }
		if o.echoCancel && media.IsMicrophone(cfg.Audio) {
			// The microphone may hear the speaker: laptop speakers, not
			// a headset.
			if parts.echo, err = speexdsp.NewCanceller(speexdsp.Config{}); err != nil {
				return nil, parts, err
			}
			cfg.EchoCanceller = parts.echo
		}
	}
	if o.record != "" {
		if parts.rec, err = pipeline.NewRecorder(o.record); err != nil {
			return nil, parts, err
		}
		cfg.Recorder = parts.rec
	}
	return pipeline.New(cfg), parts, nil
}

func openCamera(path string) (media.VideoSource, error) {
	return device.OpenCamera(device.CameraConfig{Device: path, Width: 640, Height: 360, FrameRate: 30})
}

func openScreen() (media.VideoSource, error) { return device.OpenScreen(device.ScreenConfig{}) }
