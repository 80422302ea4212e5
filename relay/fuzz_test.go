package relay

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// FuzzConfigFile loads arbitrary configuration files: none panics, and an
// accepted one has only valid room names and password hashes.
func FuzzConfigFile(f *testing.F) {
	hash, err := HashPassword("pw")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{"history_on_join": 7, "retain_for": "48h", "rooms": {"team": {"password_hash": "` + hash + `"}}}`)
	f.Add(`{"rooms": {"no/slash": {}}}`)
	f.Add(`{"retain_for": 5}`)
	f.Add(`{"keepalive": "-1s", "write_timeout": "1ns", "voice_bitrate_cap": -1}`)
	f.Add(`{"rooms": {"a": {"password_hash": "$argon2id$v=19$m=1,t=1,p=1$$"}}}`)
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), "parleyd.json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		var cfg Config
		if err := LoadConfigFile(path, &cfg); err != nil {
			return
		}
		for name, rc := range cfg.Rooms {
			if err := protocol.ValidRoom(name); err != nil {
				t.Fatalf("accepted room %q: %v", name, err)
			}
			if rc.PasswordHash != "" {
				if _, err := parseHash(rc.PasswordHash); err != nil {
					t.Fatalf("accepted hash %q: %v", rc.PasswordHash, err)
				}
			}
		}
		_ = cfg.withDefaults() // any accepted configuration has defaults
	})
}

// FuzzSessionInput writes arbitrary bytes, split at random points, on a
// stream of a session with a running relay after its hello (kind byte
// first, from the input), then a Ping on the control stream. The relay
// must answer the Ping or end the session with a Goodbye whose code is a
// fatal one, within a second — never hang, never panic — and go on
// serving.
func FuzzSessionInput(f *testing.F) {
	for _, seed := range [][]byte{
		append([]byte{byte(protocol.KindControl)}, frame(&protocol.Join{Room: "lobby", Name: "fuzz"})...),
		append([]byte{byte(protocol.KindText)}, frame(&protocol.SendChat{ClientID: 1, Text: "hi"})...),
		append([]byte{byte(protocol.KindVoice)}, frame(voiceFrame(1))...),
		append([]byte{byte(protocol.KindVideo)}, frame(&protocol.VideoFragment{Codec: protocol.CodecVP8, Count: 1, Data: []byte{1}})...),
		append([]byte{byte(protocol.KindFile)}, protocol.AppendHeader(nil, protocol.Header{Type: 0x70, Length: 2})...),
		{byte(protocol.KindControl), 0x0c, 0, 0, 0, 0, 8, 1, 2, 3},
		{byte(protocol.KindText), 0x30, 0, 0xff, 0xff, 0xff, 0xff},
		{9},
	} {
		f.Add(uint64(len(seed)), seed)
	}
	ts := startServer(f, fast(Config{})) // one relay for every input
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		if len(data) == 0 {
			return
		}
		s := muxHelloOwned(t, ts.addr)
		defer s.close()
		id := s.ctl
		rest := data
		if protocol.StreamKind(data[0]) != protocol.KindControl {
			var err error
			if id, err = s.open(data[:1]); err != nil {
				return
			}
		}
		rest = rest[1:]
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		for len(rest) > 0 {
			n := min(len(rest), 1+rng.IntN(64))
			if s.send(id, rest[:n]) != nil {
				break
			}
			rest = rest[n:]
		}
		s.send(s.ctl, frame(&protocol.Ping{Nonce: 0xfeed}))
		s.readTimeout = time.Second
	read:
		for {
			msg := s.next()
			if msg == nil {
				s.mu.Lock()
				closed := s.done
				s.mu.Unlock()
				if closed {
					return // closed at once: a violation at the yamux layer
				}
				break read
			}
			switch m := msg.(type) {
			case *protocol.Pong:
				if m.Nonce == 0xfeed {
					return
				}
			case *protocol.Goodbye:
				if !m.Code.Fatal() || m.Code == protocol.CodeInternal {
					t.Fatalf("Goodbye %v (%s)", m.Code, m.Message)
				}
				return
			}
		}
		// An input that leaves a frame half sent on the control stream
		// swallows the Ping into it; a fresh session must then be
		// answered: the relay still serves.
		c := muxHelloOwned(t, ts.addr)
		defer c.close()
		if !c.pingThrough(1) {
			t.Fatalf("the relay no longer answers after %x", data)
		}
	})
}
