package relay

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/parleychat/parley/protocol"
)

// Config configures a Server. The zero value of each field means the default
// given in its comment, so Config{} is a working in-memory server.
type Config struct {
	// DataDir holds the server's key, certificate and history database.
	// Empty: a key made up for this run and history kept in memory only.
	DataDir string
	// Certificate, if set, is used instead of the one in DataDir.
	Certificate *tls.Certificate
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
	// Software is sent in the Welcome (default "parleyd").
	Software string

	// HandshakeTimeout bounds TLS plus Hello/Welcome (default 5s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds every write to a client; a client whose write
	// times out is disconnected as a slow consumer (default 10s).
	WriteTimeout time.Duration
	// KeepAliveInterval is the yamux keepalive period (default 15s); a
	// silent peer is noticed within KeepAliveInterval + WriteTimeout.
	KeepAliveInterval time.Duration
	// MaxStreams caps a client's open streams, control included (default 8).
	MaxStreams int
	// StreamOpens and StreamOpenBurst cap stream opens per second after
	// the hello (defaults 4 and 16).
	StreamOpens     float64
	StreamOpenBurst int
	// MaxPendingHandshakes caps connections still in TLS or hello; more
	// are closed at once (default 10000).
	MaxPendingHandshakes int

	// MaxTextBytes is the longest chat text accepted, in bytes (default
	// 16 KiB, at most protocol.MaxTextBytes).
	MaxTextBytes int
	// TextBurst and TextPerMinute are each member's chat rate: a token
	// bucket of TextBurst messages refilled at TextPerMinute (defaults 20
	// and 120, at most 65535 each). Over it the sender gets
	// CodeRateLimited.
	TextBurst     int
	TextPerMinute int
	// HistoryOnJoin is how many recent room messages a fresh member gets
	// (default 100; negative: none).
	HistoryOnJoin int
	// RetainMessages keeps at most this many messages per room (default
	// 100000; negative: no limit).
	RetainMessages int
	// RetainFor removes messages older than this (default 0: kept until
	// RetainMessages pushes them out).
	RetainFor time.Duration
	// PruneInterval is how often retention runs (default 1 minute).
	PruneInterval time.Duration
	// MaxTextLag and SlowConsumerGrace define a slow consumer: a member
	// more than MaxTextLag messages behind the room whose connection has
	// taken nothing for SlowConsumerGrace is disconnected (defaults 1000
	// and 2s). Being behind alone is no fault: a burst committed at once
	// puts every member behind for a moment. The member resumes from
	// history when it reconnects.
	MaxTextLag        int
	SlowConsumerGrace time.Duration
	// ControlQueueBytes caps the control and text replies queued for one
	// client (default 256 KiB); a client over it is a slow consumer.
	ControlQueueBytes int
	// MaxRoomMembers caps members per room (default 1000, at most
	// protocol.MaxMembers).
	MaxRoomMembers int
	// MaxRooms caps rooms with members at the same time (default 10000).
	MaxRooms int

	// VoiceQueueDelay bounds how long voice waits in a receiver's queue:
	// older frames are dropped, oldest first (default 200ms).
	VoiceQueueDelay time.Duration
	// VideoQueueDelay and VideoQueueBytes bound a receiver's video queue.
	// When its oldest fragment has waited longer than VideoQueueDelay, the
	// relay drops the queued video but keyframes, drops each sender's
	// video to that receiver until its next keyframe, and asks the senders
	// for one; over VideoQueueBytes it drops keyframes too (defaults 400ms
	// and 2 MiB). So a receiver on a slow link still gets pictures, at
	// keyframes, and never delays its voice.
	VideoQueueDelay time.Duration
	VideoQueueBytes int
	// VoiceBitrateCap and VideoBitrateCap bound what one client may send,
	// in bits per second, over a one-second burst (defaults 256 kbit/s
	// and 8 Mbit/s, the video burst at least 1 MiB for keyframes). Media
	// over them is dropped at ingress; video until the next keyframe.
	VoiceBitrateCap int
	VideoBitrateCap int
	// KeyframeInterval is the least time between two keyframe requests to
	// one sender's track (default 1s).
	KeyframeInterval time.Duration
	// MinVideoBitrate: receivers whose link carries less video than this
	// are left out when the relay tells a sender what its receivers can
	// take, so that one very slow link does not spoil everyone's picture
	// (default 150 kbit/s). They get video at keyframes.
	MinVideoBitrate int
	// DisablePacing turns off the per-receiver media pacer (see pacer.go).
	// It exists to measure what pacing does.
	DisablePacing bool

	// Rooms holds per-room settings, by room name.
	Rooms map[string]RoomConfig
}

// RoomConfig holds one room's settings.
type RoomConfig struct {
	// PasswordHash, if set, is an argon2id hash (from HashPassword) of
	// the password members must give to join.
	PasswordHash string `json:"password_hash,omitempty"`
}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(v *int, x int) {
		if *v == 0 {
			*v = x
		}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Software == "" {
		d.Software = "parleyd"
	}
	d.Software = protocol.TruncateUTF8(d.Software, protocol.MaxSoftwareBytes)
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = 5 * time.Second
	}
	if d.WriteTimeout == 0 {
		d.WriteTimeout = 10 * time.Second
	}
	if d.KeepAliveInterval == 0 {
		d.KeepAliveInterval = 15 * time.Second
	}
	if d.SlowConsumerGrace == 0 {
		d.SlowConsumerGrace = 2 * time.Second
	}
	if d.PruneInterval == 0 {
		d.PruneInterval = time.Minute
	}
	if d.StreamOpens == 0 {
		d.StreamOpens = 4
	}
	def(&d.MaxStreams, 8)
	def(&d.StreamOpenBurst, 16)
	def(&d.MaxPendingHandshakes, 10000)
	def(&d.MaxTextBytes, 16<<10)
	d.MaxTextBytes = min(d.MaxTextBytes, protocol.MaxTextBytes)
	def(&d.TextBurst, 20)
	def(&d.TextPerMinute, 120)
	def(&d.HistoryOnJoin, 100)
	// The Welcome announces these in 16 bits; enforce what is announced.
	d.TextBurst = min(d.TextBurst, 65535)
	d.TextPerMinute = min(d.TextPerMinute, 65535)
	d.HistoryOnJoin = min(max(d.HistoryOnJoin, 0), 65535)
	def(&d.RetainMessages, 100000)
	d.RetainMessages = max(d.RetainMessages, 0)
	def(&d.MaxTextLag, 1000)
	def(&d.ControlQueueBytes, 256<<10)
	def(&d.MaxRoomMembers, 1000)
	d.MaxRoomMembers = min(d.MaxRoomMembers, protocol.MaxMembers)
	def(&d.MaxRooms, 10000)
	if d.VoiceQueueDelay == 0 {
		d.VoiceQueueDelay = 200 * time.Millisecond
	}
	if d.VideoQueueDelay == 0 {
		d.VideoQueueDelay = 400 * time.Millisecond
	}
	if d.KeyframeInterval == 0 {
		d.KeyframeInterval = time.Second
	}
	def(&d.VideoQueueBytes, 2<<20)
	def(&d.VoiceBitrateCap, 256_000)
	def(&d.VideoBitrateCap, 8_000_000)
	def(&d.MinVideoBitrate, 150_000)
	return d
}

// FileConfig is the JSON form of parleyd's configuration file. Durations are
// Go duration strings ("720h"); omitted fields keep their defaults.
type FileConfig struct {
	HistoryOnJoin  int                   `json:"history_on_join,omitempty"`
	RetainMessages int                   `json:"retain_messages,omitempty"`
	RetainFor      Duration              `json:"retain_for,omitempty"`
	MaxTextBytes   int                   `json:"max_text_bytes,omitempty"`
	TextBurst      int                   `json:"text_burst,omitempty"`
	TextPerMinute  int                   `json:"text_per_minute,omitempty"`
	MaxTextLag     int                   `json:"max_text_lag,omitempty"`
	SlowGrace      Duration              `json:"slow_consumer_grace,omitempty"`
	MaxRoomMembers int                   `json:"max_room_members,omitempty"`
	WriteTimeout   Duration              `json:"write_timeout,omitempty"`
	KeepAlive      Duration              `json:"keepalive,omitempty"`
	VoiceCap       int                   `json:"voice_bitrate_cap,omitempty"`
	VideoCap       int                   `json:"video_bitrate_cap,omitempty"`
	Rooms          map[string]RoomConfig `json:"rooms,omitempty"`
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON parses "90s", "720h" and the like.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"720h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// LoadConfigFile reads a JSON configuration file into cfg. Unknown fields
// are an error, so a misspelt setting does not pass silently.
func LoadConfigFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var fc FileConfig
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for room, rc := range fc.Rooms {
		if err := protocol.ValidRoom(room); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		if rc.PasswordHash != "" {
			if _, err := parseHash(rc.PasswordHash); err != nil {
				return fmt.Errorf("config %s: room %q: %w", path, room, err)
			}
		}
	}
	setInt := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&cfg.HistoryOnJoin, fc.HistoryOnJoin)
	setInt(&cfg.RetainMessages, fc.RetainMessages)
	setInt(&cfg.MaxTextBytes, fc.MaxTextBytes)
	setInt(&cfg.TextBurst, fc.TextBurst)
	setInt(&cfg.TextPerMinute, fc.TextPerMinute)
	setInt(&cfg.MaxTextLag, fc.MaxTextLag)
	setInt(&cfg.MaxRoomMembers, fc.MaxRoomMembers)
	setInt(&cfg.VoiceBitrateCap, fc.VoiceCap)
	setInt(&cfg.VideoBitrateCap, fc.VideoCap)
	if fc.RetainFor != 0 {
		cfg.RetainFor = time.Duration(fc.RetainFor)
	}
	if fc.SlowGrace != 0 {
		cfg.SlowConsumerGrace = time.Duration(fc.SlowGrace)
	}
	if fc.WriteTimeout != 0 {
		cfg.WriteTimeout = time.Duration(fc.WriteTimeout)
	}
	if fc.KeepAlive != 0 {
		cfg.KeepAliveInterval = time.Duration(fc.KeepAlive)
	}
	if fc.Rooms != nil {
		cfg.Rooms = fc.Rooms
	}
	return nil
}
