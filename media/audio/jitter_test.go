package audio

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
)

// The simulations below run a sender, a network and a playout clock on
// simulated time: packets are pushed when they arrive, the playout pops one
// frame every 20 ms. Payloads carry their sequence number, so that every
// decision can be checked against what was sent.

var simStart = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

const (
	simBase  = 30 * time.Millisecond // fastest network transit
	simPhase = 7 * time.Millisecond  // playout tick offset from the sender's grid
)

type simPacket struct {
	seq    uint32
	capt   time.Time
	arrive time.Time
}

// simSender sends frame i (sequence seq0+i, captured at i×20 ms) for i in
// [from, to), unless drop(i); it arrives after simBase + delay(i).
func simSender(seq0 uint32, from, to int, delay func(i int) time.Duration, drop func(i int) bool) []simPacket {
	var ps []simPacket
	for i := from; i < to; i++ {
		if drop != nil && drop(i) {
			continue
		}
		c := simStart.Add(time.Duration(i) * media.FrameDuration)
		d := simBase
		if delay != nil {
			d += delay(i)
		}
		ps = append(ps, simPacket{seq: seq0 + uint32(i-from), capt: c, arrive: c.Add(d)})
	}
	return ps
}

type simTick struct {
	n     int
	now   time.Time
	p     Playout
	stats JitterStats
}

type simResult struct {
	ticks  []simTick
	played []uint32 // sequence numbers decoded for playback, in order
	stats  JitterStats
}

// simulate pushes pkts at their arrival times and pops ticks frames.
func simulate(t *testing.T, jb *JitterBuffer, pkts []simPacket, ticks int) simResult {
	t.Helper()
	pkts = slices.Clone(pkts)
	slices.SortStableFunc(pkts, func(a, b simPacket) int { return a.arrive.Compare(b.arrive) })
	var r simResult
	next := 0
	var lastResyncs uint64
	for n := range ticks {
		now := simStart.Add(simPhase + time.Duration(n)*media.FrameDuration)
		for next < len(pkts) && !pkts[next].arrive.After(now) {
			p := pkts[next]
			jb.Push(p.seq, p.capt, binary.BigEndian.AppendUint32(nil, p.seq), p.arrive)
			next++
		}
		resyncs := jb.Stats().Resyncs
		p := jb.Pop(now)
		checkPlayout(t, n, p)
		if p.Kind == PlayDecode {
			if resyncs != lastResyncs {
				lastResyncs = resyncs
			} else if len(r.played) > 0 && diff(p.Seq, r.played[len(r.played)-1]) <= 0 {
				t.Fatalf("tick %d: played %d after %d", n, p.Seq, r.played[len(r.played)-1])
			}
			r.played = append(r.played, p.Seq)
		}
		r.ticks = append(r.ticks, simTick{n: n, now: now, p: p, stats: jb.Stats()})
	}
	r.stats = jb.Stats()
	return r
}

// checkPlayout checks that a playout's payloads are the packets it names.
func checkPlayout(t *testing.T, n int, p Playout) {
	t.Helper()
	seqOf := func(b []byte) uint32 {
		if len(b) != 4 {
			t.Fatalf("tick %d: payload %x is not a simulated packet", n, b)
		}
		return binary.BigEndian.Uint32(b)
	}
	switch p.Kind {
	case PlayDecode:
		if s := seqOf(p.Payload); s != p.Seq {
			t.Fatalf("tick %d: decode of seq %d carries packet %d", n, p.Seq, s)
		}
	case PlayFEC:
		if s := seqOf(p.Payload); s != p.Seq+1 {
			t.Fatalf("tick %d: FEC for seq %d carries packet %d, want %d", n, p.Seq, s, p.Seq+1)
		}
	case PlayConceal, PlayNone:
		if p.Payload != nil {
			t.Fatalf("tick %d: %v with a payload", n, p.Kind)
		}
	}
	if p.Skip != nil {
		if p.Kind != PlayDecode || seqOf(p.Skip) != p.Seq-1 {
			t.Fatalf("tick %d: skip of packet %d before %v of %d", n, seqOf(p.Skip), p.Kind, p.Seq)
		}
	}
}

// consecutive reports whether seqs run without a gap.
func consecutive(seqs []uint32) bool {
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			return false
		}
	}
	return true
}

func TestJitterSteady(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	r := simulate(t, jb, simSender(100, 0, 500, nil, nil), 510)
	st := r.ticks[495].stats // before the stream ends
	// The first frame waits the initial 40 ms: it arrives at 30 ms and
	// plays at the first tick at least 40 ms later (87 ms), 57 ms behind.
	// When the target falls to 20 ms, one packet is skipped to bring the
	// delay to 37 ms.
	first := slices.IndexFunc(r.ticks, func(k simTick) bool { return k.p.Kind == PlayDecode })
	if got := r.ticks[first].now.Sub(simStart); got != 87*time.Millisecond {
		t.Errorf("first frame played at %v, want 87ms", got)
	}
	if st.Skipped != 1 || st.Delay != 37*time.Millisecond {
		t.Errorf("skipped %d, delay %v; want 1, 37ms", st.Skipped, st.Delay)
	}
	if r.played[0] != 100 || r.played[len(r.played)-1] != 599 || uint64(len(r.played))+st.Skipped != 500 {
		t.Errorf("played %d frames %d..%d, want all 500 but the skipped one", len(r.played), r.played[0], r.played[len(r.played)-1])
	}
	if st.Concealed != 0 || st.RecoveredFEC != 0 || st.Late != 0 || st.Stretched != 0 {
		t.Errorf("stats %+v, want nothing lost, late or stretched", st)
	}
	if end := r.stats; end.Concealed != 5 || end.Idle == 0 {
		t.Errorf("after the stream ends: concealed %d, idle %d; want 5 (MaxConceal), then idle", end.Concealed, end.Idle)
	}
	if st.TargetDelay != 20*time.Millisecond {
		t.Errorf("target delay %v without jitter, want the 20ms minimum", st.TargetDelay)
	}
	if r.ticks[400].stats.LossFraction != 0 {
		t.Errorf("loss fraction %v, want 0", r.ticks[400].stats.LossFraction)
	}
}

// TestJitterAdapts sends 5 s without jitter, 10 s with jitter of up to
// 80 ms, then 10 s without: the target grows to cover the jitter (frames are
// stretched to grow the delay), few packets are late, and the target and
// the delay come back down when the jitter ends.
func TestJitterAdapts(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	jitter := make([]time.Duration, 1300)
	for i := 250; i < 750; i++ {
		jitter[i] = time.Duration(rng.Float64() * float64(80*time.Millisecond))
	}
	jb := NewJitterBuffer(JitterConfig{})
	r := simulate(t, jb, simSender(0, 0, 1300, func(i int) time.Duration { return jitter[i] }, nil), 1260)
	calm := r.ticks[249].stats
	during := r.ticks[749].stats
	if calm.TargetDelay != 20*time.Millisecond {
		t.Errorf("target delay %v before the jitter, want 20ms", calm.TargetDelay)
	}
	if during.TargetDelay < 65*time.Millisecond || during.TargetDelay > 85*time.Millisecond {
		t.Errorf("target delay %v under 0-80 ms jitter, want 65-85 ms", during.TargetDelay)
	}
	if during.Stretched == 0 {
		t.Errorf("no frame stretched to grow the delay")
	}
	lost := during.Concealed + during.RecoveredFEC
	if lost > 25 {
		t.Errorf("%d of 500 frames lost to jitter, want under 5%%", lost)
	}
	end := r.ticks[1250].stats
	if end.TargetDelay != 20*time.Millisecond {
		t.Errorf("target delay %v 10 s after the jitter ended, want 20ms", end.TargetDelay)
	}
	if end.Delay > 45*time.Millisecond {
		t.Errorf("playout delay %v 10 s after the jitter ended, want at most 45ms", end.Delay)
	}
	if end.Skipped == 0 {
		t.Errorf("no packet skipped to shrink the delay")
	}
	if end.Concealed+end.RecoveredFEC != lost {
		t.Errorf("frames lost after the jitter ended: %+v", end)
	}
	// The shrink is gradual: the target falls by at most 1 ms a tick.
	for i := 1; i < len(r.ticks); i++ {
		if d := r.ticks[i-1].stats.TargetDelay - r.ticks[i].stats.TargetDelay; d > time.Millisecond {
			t.Fatalf("tick %d: target fell by %v", i, d)
		}
	}
	t.Logf("under 0-80 ms jitter: target %v, delay %v, %d/500 lost (%d late), %d stretched; 10 s after: target %v, delay %v, %d skipped",
		during.TargetDelay, during.Delay, lost, during.Late, during.Stretched, end.TargetDelay, end.Delay, end.Skipped)
}

// TestJitterLossFEC drops 10% of the packets: each lost frame whose next
// packet arrived is rebuilt from FEC, the others concealed, and the loss
// fraction reports the loss.
func TestJitterLossFEC(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 1000
	lost := make([]bool, n)
	for i := 5; i < n-5; i++ {
		lost[i] = rng.Float64() < 0.10
	}
	var wantFEC, wantPLC uint64
	for i := range n - 5 {
		switch {
		case !lost[i]:
		case !lost[i+1]:
			wantFEC++
		default:
			wantPLC++
		}
	}
	jb := NewJitterBuffer(JitterConfig{})
	r := simulate(t, jb, simSender(0, 0, n, nil, func(i int) bool { return lost[i] }), n+2) // all arrived, some still buffered
	st := r.stats
	if st.RecoveredFEC != wantFEC || st.Concealed != wantPLC {
		t.Errorf("recovered %d by FEC and concealed %d, want %d and %d", st.RecoveredFEC, st.Concealed, wantFEC, wantPLC)
	}
	if got := uint64(len(r.played)) + st.Skipped + uint64(st.Buffered); got != n-wantFEC-wantPLC {
		t.Errorf("played %d + skipped %d + buffered %d, want %d", len(r.played), st.Skipped, st.Buffered, n-wantFEC-wantPLC)
	}
	lf := r.ticks[600].stats.LossFraction
	var actual int
	for i := 600 - 250 - 3; i < 600-3; i++ { // frame i plays at tick i+3
		if lost[i] {
			actual++
		}
	}
	if want := float64(actual) / 250; math.Abs(lf-want) > 0.01 {
		t.Errorf("loss fraction %.3f, want %.3f", lf, want)
	}
	if st.Late != 0 || st.Resyncs != 0 {
		t.Errorf("late %d, resyncs %d, want 0", st.Late, st.Resyncs)
	}
	t.Logf("10%% loss: %d recovered by FEC, %d concealed, loss fraction %.3f", st.RecoveredFEC, st.Concealed, lf)
}

// TestJitterStallBurst stalls the network for 300 ms at 4 s: the packets
// sent meanwhile arrive in one burst when it ends.
func TestJitterStallBurst(t *testing.T) {
	stallFrom := simStart.Add(4 * time.Second)
	stallEnd := stallFrom.Add(300 * time.Millisecond)
	delay := func(i int) time.Duration {
		c := simStart.Add(time.Duration(i) * media.FrameDuration)
		if a := c.Add(simBase); !a.Before(stallFrom) && a.Before(stallEnd) {
			return stallEnd.Sub(a)
		}
		return 0
	}
	jb := NewJitterBuffer(JitterConfig{})
	r := simulate(t, jb, simSender(0, 0, 650, delay, nil), 600)
	before := r.ticks[195].stats
	st := r.stats
	if c := st.Concealed - before.Concealed; c != 5 {
		t.Errorf("stall concealed %d frames, want 5 (MaxConceal) before going idle", c)
	}
	if st.Idle-before.Idle == 0 {
		t.Errorf("no idle tick during the stall")
	}
	// The concealed frames are late when the burst arrives; the rest of
	// the burst plays (at a higher delay, which skips bring down).
	var missing []uint32
	for s, i := uint32(0), 0; s < 550; s++ {
		if i < len(r.played) && r.played[i] == s {
			i++
			continue
		}
		missing = append(missing, s)
	}
	if uint64(len(missing)) != st.Late+st.Skipped {
		t.Errorf("missing frames %v, want the %d late and %d skipped ones", missing, st.Late, st.Skipped)
	}
	if st.Late != 5 {
		t.Errorf("%d late packets, want the 5 concealed ones", st.Late)
	}
	if st.Resyncs != 0 || st.Duplicates != 0 {
		t.Errorf("resyncs %d, duplicates %d, want 0", st.Resyncs, st.Duplicates)
	}
	after := r.ticks[230].stats
	if after.TargetDelay < 150*time.Millisecond {
		t.Errorf("target delay %v after a 300 ms stall, want it raised", after.TargetDelay)
	}
	if st.TargetDelay > 25*time.Millisecond || st.Delay > 45*time.Millisecond {
		t.Errorf("target %v, delay %v 7 s after the stall, want them back down", st.TargetDelay, st.Delay)
	}
	t.Logf("300 ms stall: concealed 5, then idle; %d late; target after %v, 7 s later %v (delay %v, %d skips)",
		st.Late, after.TargetDelay, st.TargetDelay, st.Delay, st.Skipped)
}

// TestJitterDuplicatesReorder sends every packet twice and swaps
// neighbours.
func TestJitterDuplicatesReorder(t *testing.T) {
	base := simSender(0, 0, 500, func(i int) time.Duration {
		if i%2 == 0 {
			return 15 * time.Millisecond // arrives after its odd successor
		}
		return 0
	}, nil)
	pkts := slices.Clone(base)
	for _, p := range base {
		p.arrive = p.arrive.Add(3 * time.Millisecond)
		pkts = append(pkts, p)
	}
	jb := NewJitterBuffer(JitterConfig{})
	r := simulate(t, jb, pkts, 502) // the stream ends at tick 502
	st := r.stats
	if uint64(len(r.played))+st.Skipped+uint64(st.Buffered) != 500 || len(r.played) < 490 {
		t.Errorf("played %d frames, skipped %d, buffered %d; want all 500", len(r.played), st.Skipped, st.Buffered)
	}
	if st.Duplicates < 490 || st.Concealed != 0 || st.Late != 0 {
		t.Errorf("duplicates %d, concealed %d, late %d; want ~500, 0, 0", st.Duplicates, st.Concealed, st.Late)
	}
}

// TestJitterWrap runs across the wrap of the sequence numbers with jitter
// and loss.
func TestJitterWrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	jb := NewJitterBuffer(JitterConfig{})
	seq0 := uint32(math.MaxUint32 - 150)
	r := simulate(t, jb, simSender(seq0, 0, 400,
		func(int) time.Duration { return time.Duration(rng.IntN(30)) * time.Millisecond },
		func(i int) bool { return i%17 == 0 && i > 0 }), 410)
	st := r.stats
	if st.Resyncs != 0 || st.Overflow != 0 {
		t.Errorf("resyncs %d, overflow %d across the wrap, want 0", st.Resyncs, st.Overflow)
	}
	wrapped := slices.Index(r.played, 0) > 0 && slices.Contains(r.played, math.MaxUint32)
	if !wrapped || len(r.played) < 360 {
		t.Errorf("played %d frames, across the wrap %v", len(r.played), wrapped)
	}
	if st.RecoveredFEC < 20 {
		t.Errorf("recovered %d by FEC, want the ~23 lost", st.RecoveredFEC)
	}
}

// TestJitterRestart restarts the sender (its sequence numbers start over
// after half a second) and, separately, pauses it for 2 s without advancing
// them: both start a new stream whose first packets play.
func TestJitterRestart(t *testing.T) {
	pkts := simSender(50000, 0, 300, nil, nil)
	pkts = append(pkts, simSender(0, 325, 600, nil, nil)...)    // restarted at 6.5 s
	pkts = append(pkts, simSender(275, 700, 1000, nil, nil)...) // 2 s pause, sequence continues
	jb := NewJitterBuffer(JitterConfig{})
	r := simulate(t, jb, pkts, 1000)
	st := r.stats
	if st.Resyncs != 2 {
		t.Errorf("%d resyncs, want 2", st.Resyncs)
	}
	for _, want := range []uint32{50000, 50299, 0, 274, 275, 570} {
		if !slices.Contains(r.played, want) {
			t.Errorf("frame %d not played", want)
		}
	}
	if st.Late != 0 || st.Duplicates != 0 {
		t.Errorf("late %d, duplicates %d, want 0", st.Late, st.Duplicates)
	}
	if n := uint64(len(r.played)) + st.Skipped; n < 865 {
		t.Errorf("played %d and skipped %d of 875 frames", len(r.played), st.Skipped)
	}
}

// TestJitterOverflow fills the buffer past its capacity while nothing
// plays.
func TestJitterOverflow(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{Capacity: 16})
	now := simStart
	for i := range 40 {
		jb.Push(uint32(i), now.Add(time.Duration(i)*media.FrameDuration), []byte{byte(i)}, now)
	}
	st := jb.Stats()
	if st.Buffered != 16 || st.Overflow != 24 {
		t.Errorf("buffered %d, overflow %d; want 16, 24", st.Buffered, st.Overflow)
	}
}

// TestJitterOldPacketBeforeStart pushes, before playout starts, a packet
// Capacity or more behind the newest. It used to be stored in the slot of
// a newer packet, which was lost uncounted, while the count grew: the
// buffer then held a phantom packet and concealed forever instead of
// going idle after the stream. (Found by FuzzJitterBuffer's slot checks.)
func TestJitterOldPacketBeforeStart(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{Capacity: 4})
	now := simStart.Add(simBase + 10*media.FrameDuration)
	capt := func(seq int) time.Time { return simStart.Add(time.Duration(seq) * media.FrameDuration) }
	for seq := 1; seq <= 10; seq++ {
		jb.Push(uint32(seq), capt(seq), []byte{byte(seq)}, now)
	}
	jb.Push(1, capt(1), []byte{1}, now) // 9 behind the newest: slot 1 holds packet 9
	if st := jb.Stats(); st.Buffered != 4 || st.Overflow != 7 {
		t.Errorf("buffered %d, overflow %d; want 4 (7 to 10) and 7 (1 to 6, then 1 again)", st.Buffered, st.Overflow)
	}
	var played []uint32
	kinds := make(map[PlayKind]int)
	for i := range 20 {
		p := jb.Pop(now.Add(time.Duration(i) * media.FrameDuration))
		kinds[p.Kind]++
		if p.Kind == PlayDecode {
			played = append(played, p.Seq)
		}
	}
	if !slices.Equal(played, []uint32{7, 8, 9, 10}) {
		t.Errorf("played %v, want 7 to 10", played)
	}
	if st := jb.Stats(); st.Buffered != 0 || st.Concealed != 5 || kinds[PlayNone] == 0 {
		t.Errorf("after the stream: buffered %d, concealed %d, %d idle ticks; want 0, 5 (MaxConceal), then idle", st.Buffered, st.Concealed, kinds[PlayNone])
	}
}

// TestJitterFarSenderClock plays streams from senders whose clocks are far
// from the receiver's: arrival−capture used to saturate beyond 292 years,
// so that every packet had the same transit, a delay of 0, and never
// played. (FuzzJitterBuffer found the overflow beside it, a difference of
// two saturated transits that wrapped to a negative jitter.)
func TestJitterFarSenderClock(t *testing.T) {
	const year = 365 * 24 * time.Hour
	for _, tc := range []struct {
		name   string
		origin time.Time // the sender's capture time of frame 0
	}{
		{"same clock", simStart},
		{"400 years ahead", simStart.Add(200 * year).Add(200 * year)},
		{"400 years behind", simStart.Add(-200 * year).Add(-200 * year)},
		{"at the end of int64 µs", time.UnixMicro(math.MaxInt64 - 100_000_000)},
		{"at the start of int64 µs", time.UnixMicro(math.MinInt64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jb := NewJitterBuffer(JitterConfig{})
			played := 0
			for i := range 250 {
				now := simStart.Add(simBase + time.Duration(i)*media.FrameDuration)
				jb.Push(uint32(i), tc.origin.Add(time.Duration(i)*media.FrameDuration), []byte{1}, now)
				if jb.Pop(now.Add(simPhase)).Kind == PlayDecode {
					played++
				}
			}
			st := jb.Stats()
			if played < 245 || st.Jitter != 0 || st.Resyncs != 0 || st.TargetDelay != 20*time.Millisecond {
				t.Errorf("played %d of 250 frames; jitter %v, target %v, resyncs %d", played, st.Jitter, st.TargetDelay, st.Resyncs)
			}
		})
	}
}

// TestJitterConcurrent pushes and pops from two goroutines (for -race).
func TestJitterConcurrent(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			c := simStart.Add(time.Duration(i) * media.FrameDuration)
			jb.Push(uint32(i), c, []byte{1, 2, 3}, c.Add(simBase))
		}
	})
	wg.Go(func() {
		for i := range 2000 {
			p := jb.Pop(simStart.Add(time.Duration(i) * media.FrameDuration))
			_ = len(p.Payload)
			jb.NoteLevel(uint8(i % 128))
		}
	})
	wg.Wait()
	_ = jb.Stats()
}

func BenchmarkJitterPushPop(b *testing.B) {
	jb := NewJitterBuffer(JitterConfig{})
	payload := make([]byte, 80)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := simStart.Add(time.Duration(i) * media.FrameDuration)
		jb.Push(uint32(i), c, payload, c.Add(simBase))
		jb.Pop(c.Add(simBase + 40*time.Millisecond))
		i++
	}
}
