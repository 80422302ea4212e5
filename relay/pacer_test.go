package relay

import (
	"slices"
	"testing"
	"time"
)

// linkSim is a bottleneck link: a FIFO served at rate bytes per second,
// then a fixed propagation delay each way. It is what the pacer must keep
// from filling up.
type linkSim struct {
	rate    float64 // bytes per second
	prop    int64   // one-way propagation, ns
	queue   []simPacket
	busyTil int64 // when the link finishes what it has
}

type simPacket struct {
	bytes int
	ping  uint64 // nonce of a Ping, or 0
	voice bool
	sent  int64
}

// send puts a packet on the link and returns when it arrives.
func (l *linkSim) send(p simPacket, now int64) int64 {
	start := max(now, l.busyTil)
	l.busyTil = start + int64(float64(p.bytes)/l.rate*1e9)
	return l.busyTil + l.prop
}

// simFragment is the size of the simulated video fragments: the senders'
// default.
const simFragment = 4096

// simResult is what a simulated run measured after its warm-up.
type simResult struct {
	voiceP50, voiceP99 time.Duration // voice delay above the idle link's
	videoBps           float64       // video delivered
	maxRelayQueue      time.Duration // longest a fragment waited in the relay
}

// simulate paces a 30 fps video of the given bitrate (a keyframe ten
// times a delta frame every two seconds, 4 KiB fragments) plus one voice
// frame of 100 bytes every 20 ms through a link of linkBps, for d.
func simulate(t *testing.T, linkBps, videoBps float64, d time.Duration) simResult {
	t.Helper()
	const ms = int64(time.Millisecond)
	link := &linkSim{rate: linkBps / 8, prop: 10 * ms}
	p := newPacer(defaultPacerConfig(), 0)
	type frag struct {
		bytes int
		at    int64
	}
	var relayQ []frag
	type pong struct {
		nonce uint64
		at    int64
	}
	var pongs []pong
	var written uint64
	var nonce uint64
	var voiceDelays []time.Duration
	var videoBytes float64
	var maxWait time.Duration
	warmup := int64(3 * time.Second)
	deltaBytes := int(videoBps / 8 * 2 / 69) // per 2 s, 60 frames: 1 keyframe of 10 deltas + 59 deltas
	for now := int64(0); now < int64(d); now += ms / 4 {
		tick := now / (ms / 4)
		if tick%(int64(time.Second/30)/(ms/4)) == 0 { // a video frame
			n := deltaBytes
			if (now/int64(time.Second/30))%60 == 0 {
				n *= 10
			}
			for n > 0 {
				relayQ = append(relayQ, frag{min(n, simFragment), now})
				n -= simFragment
			}
		}
		if testing.Verbose() && tick%4000 == 0 {
			t.Logf("t=%v rate %.0f kbit/s queueing %v minRTT %v maxRate %.0f relayQ %d", time.Duration(now), p.rate*8/1e3, p.queueing, time.Duration(p.minRTT.value()), p.maxRate.value()*8/1e3, len(relayQ))
		}
		for len(pongs) > 0 && pongs[0].at <= now {
			p.pong(pongs[0].nonce, pongs[0].at)
			pongs = pongs[1:]
		}
		if due, _ := p.pingDue(now, true); due {
			nonce++
			written += 14
			p.pingSent(nonce, written, now)
			arrive := link.send(simPacket{bytes: 14}, now)
			pongs = append(pongs, pong{nonce, arrive + link.prop})
			slices.SortFunc(pongs, func(a, b pong) int { return int(a.at - b.at) })
		}
		if tick%(int64(20*time.Millisecond)/(ms/4)) == 0 { // voice goes out at once
			arrive := link.send(simPacket{bytes: 100}, now)
			p.spend(100, now)
			written += 100
			if now > warmup {
				voiceDelays = append(voiceDelays, time.Duration(arrive-now-link.prop)-time.Duration(100/link.rate*1e9))
			}
		}
		for len(relayQ) > 0 && p.videoWait(now) == 0 {
			f := relayQ[0]
			relayQ = relayQ[1:]
			link.send(simPacket{bytes: f.bytes}, now)
			p.spend(f.bytes, now)
			written += uint64(f.bytes)
			if now > warmup {
				videoBytes += float64(f.bytes)
				maxWait = max(maxWait, time.Duration(now-f.at))
			}
		}
	}
	slices.Sort(voiceDelays)
	return simResult{
		voiceP50:      voiceDelays[len(voiceDelays)/2],
		voiceP99:      voiceDelays[len(voiceDelays)*99/100],
		videoBps:      videoBytes * 8 / (float64(d-time.Duration(warmup)) / 1e9),
		maxRelayQueue: maxWait,
	}
}

// TestPacerKeepsTheLinkQueueShort: 1.5 Mbit/s of video with keyframe
// bursts on a 2.5 Mbit/s link. Unpaced, a keyframe queues 160 ms of data
// ahead of the voice; paced, voice waits little and video still all goes.
func TestPacerKeepsTheLinkQueueShort(t *testing.T) {
	r := simulate(t, 2.5e6, 1.5e6, 20*time.Second)
	t.Logf("voice delay p50 %v p99 %v, video %.2f Mbit/s, longest relay wait %v", r.voiceP50, r.voiceP99, r.videoBps/1e6, r.maxRelayQueue)
	// One fragment alone is 13 ms on this link; probing for bandwidth
	// overshoots it by up to 10 % during a keyframe.
	if r.voiceP99 > 40*time.Millisecond {
		t.Errorf("voice delay p99 = %v, want at most 40ms", r.voiceP99)
	}
	if r.videoBps < 1.4e6 {
		t.Errorf("video delivered at %.2f Mbit/s, want all 1.5", r.videoBps/1e6)
	}
	if r.maxRelayQueue > 400*time.Millisecond {
		t.Errorf("a fragment waited %v in the relay, want under the 400ms the relay allows", r.maxRelayQueue)
	}
}

// TestPacerFindsASlowLink: 1.5 Mbit/s of video offered to a 600 kbit/s
// link. The pacer must settle near the link rate — using most of it, with
// little queueing in it — so that voice stays prompt and the relay's
// queue, where video can be dropped, takes the excess. (The simulated relay
// drops nothing, so its queue grows without bound here.)
func TestPacerFindsASlowLink(t *testing.T) {
	r := simulate(t, 600e3, 1.5e6, 30*time.Second)
	t.Logf("voice delay p50 %v p99 %v, video %.0f kbit/s", r.voiceP50, r.voiceP99, r.videoBps/1e3)
	// A 4 KiB fragment alone takes 55 ms at 600 kbit/s.
	if r.voiceP99 > 120*time.Millisecond {
		t.Errorf("voice delay p99 = %v, want at most 120ms", r.voiceP99)
	}
	if r.videoBps < 0.6*600e3 {
		t.Errorf("video delivered at %.0f kbit/s, want most of the 600 kbit/s link", r.videoBps/1e3)
	}
}

func TestPacerUnpacedWithoutPongs(t *testing.T) {
	p := newPacer(defaultPacerConfig(), 0)
	p.spend(1<<20, 0)
	if w := p.videoWait(0); w == 0 {
		t.Errorf("videoWait after 1 MiB at the start = 0, want a wait: the pacer paces from the start")
	}
	// Pings for 3 s, none answered (one with the wrong nonce).
	sec := int64(time.Second)
	for now := int64(1); now <= 4*sec; now += sec / 10 {
		if due, _ := p.pingDue(now, true); due {
			p.pingSent(uint64(now), 0, now)
			p.pong(uint64(now)+1, now)
		}
	}
	if p.active() {
		t.Errorf("the pacer still paces a client that answered no Ping for 4 s")
	}
	if w := p.videoWait(4 * sec); w != 0 {
		t.Errorf("videoWait for a client that does not answer = %v, want 0", w)
	}
	due, _ := p.pingDue(4*sec+sec/10, true)
	if !due {
		t.Fatal("no Ping due")
	}
	p.pingSent(99, 0, 4*sec+sec/10)
	p.pong(99, 4*sec+sec/5)
	if !p.active() {
		t.Errorf("an answered Ping did not make the pacer pace again")
	}
}

func TestWindowed(t *testing.T) {
	w := windowed{span: 10, min: true}
	for i, tt := range []struct {
		v    float64
		at   int64
		want float64
	}{
		{5, 0, 5}, {7, 1, 5}, {3, 2, 3}, {9, 6, 3}, {8, 12, 8}, {6, 13, 6}, {10, 40, 10},
	} {
		w.add(tt.v, tt.at)
		if got := w.value(); got != tt.want {
			t.Errorf("step %d: add(%v, %d): value() = %v, want %v", i, tt.v, tt.at, got, tt.want)
		}
	}
}
