package audio

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the generated fuzz seed corpora in testdata/fuzz")

// FuzzJitterBuffer drives a JitterBuffer with a program the fuzzer writes:
// a configuration, then pushes (sequence numbers, capture times, arrival
// times, payload sizes), pops and level notes. The first four bytes are
// the configuration (see jitterFuzzConfig); each operation is an opcode
// byte (modulo jopCount) and its arguments, missing bytes reading as zero:
//
//	jopPop      ms        advance the clock by ms, then Pop
//	jopPush     d j size  the sender's next packet: frame += int8(d),
//	                      captured on the sender's 20 ms grid + int8(j) ms
//	jopPushRaw  seq(4) µs(8) size
//	                      any sequence number and capture time
//	                      (time.UnixMicro, as the receiver converts them)
//	jopRestart  seq0(4) shift(2)
//	                      the sender restarts: new sequence numbers from
//	                      seq0, its clock moved by int16(shift) ms if
//	                      shift is even, by int16(shift) months if odd
//	jopWait     n         advance the clock by n×10 ms
//	jopLevel    l         NoteLevel(l)
//
// Payloads are 4+16×size bytes and start with the push's index, so that
// every payload returned can be traced to the push it came from.
//
// After every operation the buffer's invariants hold (checkJitterState);
// after every Pop, what it returned is checked against what was pushed
// (jitterModel.pop). And a new stream that arrives steadily (one packet
// per 20 ms tick, on time) starts playing within MaxDelay.
func FuzzJitterBuffer(f *testing.F) {
	seeds := jitterSeeds()
	if *updateSeeds {
		writeSeeds(f, "FuzzJitterBuffer", seeds)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		in := fuzzBytes(prog)
		jb := NewJitterBuffer(jitterFuzzConfig(&in))
		m := newJitterModel(jb)
		for ops := 0; len(in) > 0 && ops < 10000; ops++ {
			switch op := in.next() % jopCount; op {
			case jopPop:
				ms := in.next()
				m.now = m.now.Add(time.Duration(ms) * time.Millisecond)
				m.pop(t, ms == 20)
			case jopPush:
				delta, jitter := int8(in.next()), int8(in.next())
				m.frame += int64(delta)
				c := m.grid.Add(time.Duration(m.frame)*media.FrameDuration + time.Duration(jitter)*time.Millisecond)
				m.push(t, m.seq0+uint32(m.frame), c, in.next())
				if delta == 1 && jitter == 0 {
					m.steadyPushes++
				} else {
					m.unsteady = true
				}
			case jopPushRaw:
				seq := in.u32()
				c := time.UnixMicro(int64(in.u64()))
				m.push(t, seq, c, in.next())
				m.unsteady = true
			case jopRestart:
				m.seq0, m.frame = in.u32(), 0
				m.grid = m.now.Add(-30 * time.Millisecond)
				if shift := int16(in.u16()); shift&1 != 0 {
					m.grid = m.grid.AddDate(0, int(shift), 0)
				} else {
					m.grid = m.grid.Add(time.Duration(shift) * time.Millisecond)
				}
				m.unsteady = true
			case jopWait:
				m.now = m.now.Add(time.Duration(in.next()) * 10 * time.Millisecond)
				m.unsteady = true
			case jopLevel:
				jb.NoteLevel(in.next())
			}
			checkJitterState(t, jb, m)
		}
	})
}

const (
	jopPop = iota
	jopPush
	jopPushRaw
	jopRestart
	jopWait
	jopLevel
	jopCount
)

// fuzzBytes reads a fuzzer's input; past its end, bytes read as zero.
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

func (b *fuzzBytes) u16() uint16 { return uint16(b.next())<<8 | uint16(b.next()) }
func (b *fuzzBytes) u32() uint32 { return uint32(b.u16())<<16 | uint32(b.u16()) }
func (b *fuzzBytes) u64() uint64 { return uint64(b.u32())<<32 | uint64(b.u32()) }

// jitterFuzzConfig reads a configuration from four bytes: small
// capacities and windows as well as the defaults (0), delays that may be
// inconsistent (MaxDelay below MinDelay).
func jitterFuzzConfig(in *fuzzBytes) JitterConfig {
	c0, c1, c2, c3 := in.next(), in.next(), in.next(), in.next()
	return JitterConfig{
		Capacity:     []int{0, 4, 5, 16}[c0&3],
		MaxConceal:   int(c0 >> 2 & 7),
		Window:       int(c0 >> 5), // 0: the default 100
		LossWindow:   int(c1 & 15),
		Quantile:     float64(c1>>4) / 15,
		MinDelay:     time.Duration(c2&15) * 5 * time.Millisecond,
		MaxDelay:     time.Duration(c2>>4) * 20 * time.Millisecond,
		InitialDelay: time.Duration(c3) * time.Millisecond,
	}
}

// jitterModel is what the fuzz target knows of what it pushed and what the
// buffer returned.
type jitterModel struct {
	jb    *JitterBuffer
	now   time.Time
	grid  time.Time // the sender's capture time of frame 0
	seq0  uint32
	frame int64

	pushes   []jitterPush
	maxLen   int // longest payload pushed
	consumed map[uint32]bool

	// Counts of what Pop returned.
	decodes, fecs, conceals, skips, nones uint64

	// The last frame played (decoded, rebuilt or concealed, not
	// stretched), for the order checks.
	last      uint32
	lastValid bool
	lastEpoch uint64 // Resyncs when it played
	// Whether the playout position may have jumped since the last frame:
	// an idle tick came in between, or a push moved the position on
	// (a packet Capacity or more ahead of it).
	jumped   bool
	nextSeen uint32 // the playout position after the last Pop

	// A tick is steady when exactly one push, of the sender's next packet
	// on time, came since the last and the clock moved by 20 ms.
	steadyPushes int
	unsteady     bool
	// A new stream that arrives steadily must play within MaxDelay:
	// armed counts its steady ticks without a decode so far.
	resyncs uint64
	armed   int
}

type jitterPush struct {
	seq     uint32
	payload []byte
}

func newJitterModel(jb *JitterBuffer) *jitterModel {
	start := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	return &jitterModel{jb: jb, now: start.Add(30 * time.Millisecond), grid: start, consumed: make(map[uint32]bool)}
}

func (m *jitterModel) push(t *testing.T, seq uint32, captured time.Time, size byte) {
	id := uint32(len(m.pushes))
	p := make([]byte, 4+16*int(size))
	binary.BigEndian.PutUint32(p, id)
	for i := 4; i < len(p); i++ {
		p[i] = byte(id) + byte(i)
	}
	m.pushes = append(m.pushes, jitterPush{seq, bytes.Clone(p)})
	m.maxLen = max(m.maxLen, len(p))
	m.jb.Push(seq, captured, p, m.now)
	clear(p) // Push copies the payload
}

// packet returns the push whose payload b is, or fails.
func (m *jitterModel) packet(t *testing.T, what string, b []byte) (uint32, jitterPush) {
	t.Helper()
	if len(b) < 4 {
		t.Fatalf("%s payload %x was never pushed", what, b)
	}
	id := binary.BigEndian.Uint32(b)
	if id >= uint32(len(m.pushes)) || !bytes.Equal(b, m.pushes[id].payload) {
		t.Fatalf("%s payload of %d bytes (starting %x) was never pushed", what, len(b), b[:4])
	}
	return id, m.pushes[id]
}

// pop pops one tick and checks it against the pushes.
func (m *jitterModel) pop(t *testing.T, tick20 bool) {
	t.Helper()
	steady := tick20 && !m.unsteady && m.steadyPushes == 1
	m.steadyPushes, m.unsteady = 0, false
	before := m.jb.Stats()
	m.jb.mu.Lock()
	if m.jb.next != m.nextSeen {
		m.jumped = true
	}
	m.jb.mu.Unlock()
	p := m.jb.Pop(m.now)
	after := m.jb.Stats()
	m.jb.mu.Lock()
	m.nextSeen = m.jb.next
	m.jb.mu.Unlock()
	stretched := after.Stretched > before.Stretched
	if after.TargetDelay < before.TargetDelay-targetFall {
		t.Fatalf("target delay fell from %v to %v in one tick", before.TargetDelay, after.TargetDelay)
	}

	switch p.Kind {
	case PlayNone:
		m.nones++
	case PlayDecode:
		m.decodes++
		id, pk := m.packet(t, "decoded", p.Payload)
		if pk.seq != p.Seq {
			t.Fatalf("decode of seq %d returned the packet pushed as %d", p.Seq, pk.seq)
		}
		if m.consumed[id] {
			t.Fatalf("packet %d (push %d) returned a second time", pk.seq, id)
		}
		m.consumed[id] = true
	case PlayFEC:
		m.fecs++
		id, pk := m.packet(t, "FEC", p.Payload)
		if pk.seq != p.Seq+1 {
			t.Fatalf("FEC for seq %d returned the packet pushed as %d", p.Seq, pk.seq)
		}
		if m.consumed[id] {
			t.Fatalf("FEC from packet %d (push %d), which was already returned", pk.seq, id)
		}
	case PlayConceal:
		m.conceals++
	default:
		t.Fatalf("Pop returned kind %v", p.Kind)
	}
	if (p.Payload != nil) != (p.Kind == PlayDecode || p.Kind == PlayFEC) {
		t.Fatalf("%v with a payload of %d bytes", p.Kind, len(p.Payload))
	}
	if stretched && p.Kind != PlayConceal {
		t.Fatalf("stretched with %v", p.Kind)
	}
	if p.Skip != nil {
		m.skips++
		if p.Kind != PlayDecode {
			t.Fatalf("skip before %v", p.Kind)
		}
		id, pk := m.packet(t, "skipped", p.Skip)
		if pk.seq != p.Seq-1 {
			t.Fatalf("skip before the decode of seq %d returned the packet pushed as %d", p.Seq, pk.seq)
		}
		if m.consumed[id] {
			t.Fatalf("skipped packet %d (push %d) returned a second time", pk.seq, id)
		}
		m.consumed[id] = true
	}

	// Order: within a stream (no resync in between), frames play in
	// increasing sequence order; one after the other unless the buffer
	// went idle or a push moved the playout position in between.
	switch {
	case p.Kind == PlayNone:
		m.jumped = true
	case stretched:
		// A frame inserted to grow the delay carries the sequence
		// number of the frame it follows.
		if m.lastValid && m.lastEpoch == after.Resyncs && !m.jumped && p.Seq != m.last {
			t.Fatalf("stretch after frame %d carries seq %d", m.last, p.Seq)
		}
	default:
		if m.lastValid && m.lastEpoch == after.Resyncs {
			d := diff(p.Seq, m.last)
			if d <= 0 {
				t.Fatalf("frame %d (%v) played after frame %d in the same stream", p.Seq, p.Kind, m.last)
			}
			want := int64(1)
			if p.Skip != nil {
				want = 2
			}
			if !m.jumped && d != want {
				t.Fatalf("frame %d (%v, skip %v) played after frame %d", p.Seq, p.Kind, p.Skip != nil, m.last)
			}
		}
		m.last, m.lastValid, m.lastEpoch, m.jumped = p.Seq, true, after.Resyncs, false
	}

	// Liveness: the oldest packet of a new stream starts playout once it
	// has waited the target delay (at most MaxDelay), and it is decoded
	// at once.
	if after.Resyncs != m.resyncs {
		m.resyncs, m.armed = after.Resyncs, 0
		if steady {
			m.armed = 1
		}
	} else if m.armed > 0 {
		m.armed++
	}
	switch {
	case m.armed == 0:
	case !steady || p.Kind == PlayDecode:
		m.armed = 0
	case time.Duration(m.armed-3)*media.FrameDuration > m.jb.cfg.MaxDelay:
		t.Fatalf("a new stream arrived steadily for %d ticks and did not play (max delay %v): %+v", m.armed, m.jb.cfg.MaxDelay, after)
	}
}

// checkJitterState checks the buffer's invariants: its bookkeeping agrees
// with its slots, it holds at most Capacity packets, all within Capacity of
// the playout position, its counters add up to what was pushed and popped,
// its measures stay in range, and it holds no more memory than Capacity+2
// copies of the longest payload (with append's slack).
func checkJitterState(t *testing.T, b *JitterBuffer, m *jitterModel) {
	t.Helper()
	st := b.Stats()
	b.mu.Lock()
	defer b.mu.Unlock()
	capacity := len(b.slots)
	if capacity < 4 || capacity&(capacity-1) != 0 || capacity < b.cfg.Capacity {
		t.Fatalf("%d slots for a capacity of %d", capacity, b.cfg.Capacity)
	}
	held, byteCap := 0, 2*m.maxLen+64
	for i := range b.slots {
		s := &b.slots[i]
		if cap(s.data) > byteCap {
			t.Fatalf("slot %d holds %d bytes; the longest payload pushed is %d", i, cap(s.data), m.maxLen)
		}
		if !s.ok {
			continue
		}
		held++
		if int(s.seq%uint32(capacity)) != i {
			t.Fatalf("packet %d in slot %d of %d", s.seq, i, capacity)
		}
		if b.nextValid {
			if d := diff(s.seq, b.next); d < 0 || d >= int64(capacity) {
				t.Fatalf("packet %d held with the playout position at %d (capacity %d)", s.seq, b.next, capacity)
			}
		} else if d := diff(b.high, s.seq); !b.haveHigh || d < 0 || d >= int64(capacity) {
			t.Fatalf("packet %d held with the newest at %d (%v), capacity %d", s.seq, b.high, b.haveHigh, capacity)
		}
	}
	if held != b.count || st.Buffered != held {
		t.Fatalf("%d packets in the slots, count %d, Buffered %d", held, b.count, st.Buffered)
	}
	if cap(b.out) > byteCap || cap(b.skip) > byteCap {
		t.Fatalf("playout buffers of %d and %d bytes; the longest payload pushed is %d", cap(b.out), cap(b.skip), m.maxLen)
	}
	if cap(b.transits) != b.cfg.Window || cap(b.sorted) != b.cfg.Window || len(b.lossRing) != b.cfg.LossWindow {
		t.Fatalf("jitter window %d/%d, loss window %d; configured %d and %d",
			cap(b.transits), cap(b.sorted), len(b.lossRing), b.cfg.Window, b.cfg.LossWindow)
	}

	if n := uint64(len(m.pushes)); n != st.Duplicates+st.Late+st.Played+st.Skipped+st.Overflow+uint64(st.Buffered) {
		t.Fatalf("%d pushes, but duplicates %d + late %d + played %d + skipped %d + overflow %d + buffered %d",
			n, st.Duplicates, st.Late, st.Played, st.Skipped, st.Overflow, st.Buffered)
	}
	if st.Played != m.decodes || st.Skipped != m.skips || st.RecoveredFEC != m.fecs ||
		st.Concealed+st.Stretched != m.conceals || st.Idle != m.nones {
		t.Fatalf("stats %+v after %d decodes, %d skips, %d FEC, %d concealed, %d idle",
			st, m.decodes, m.skips, m.fecs, m.conceals, m.nones)
	}
	if st.TargetDelay < b.cfg.MinDelay || st.TargetDelay > b.cfg.MaxDelay {
		t.Fatalf("target delay %v outside [%v, %v]", st.TargetDelay, b.cfg.MinDelay, b.cfg.MaxDelay)
	}
	if st.Jitter < 0 {
		t.Fatalf("jitter %v", st.Jitter)
	}
	if !(st.LossFraction >= 0 && st.LossFraction <= 1) {
		t.Fatalf("loss fraction %v", st.LossFraction)
	}
}

// jitterProgram writes FuzzJitterBuffer programs, for the seeds.
type jitterProgram []byte

func (p *jitterProgram) pop(ms byte) { *p = append(*p, jopPop, ms) }
func (p *jitterProgram) push(delta, jitterMs int8, size byte) {
	*p = append(*p, jopPush, byte(delta), byte(jitterMs), size)
}
func (p *jitterProgram) pushRaw(seq uint32, micros int64, size byte) {
	*p = append(*p, jopPushRaw)
	*p = binary.BigEndian.AppendUint32(*p, seq)
	*p = binary.BigEndian.AppendUint64(*p, uint64(micros))
	*p = append(*p, size)
}
func (p *jitterProgram) restart(seq0 uint32, shiftMs int16) {
	*p = append(*p, jopRestart)
	*p = binary.BigEndian.AppendUint32(*p, seq0)
	*p = binary.BigEndian.AppendUint16(*p, uint16(shiftMs))
}
func (p *jitterProgram) wait(tens byte)   { *p = append(*p, jopWait, tens) }
func (p *jitterProgram) level(l byte)     { *p = append(*p, jopLevel, l) }
func (p *jitterProgram) config(c ...byte) { *p = append(*p, c...) }

// jitterSeeds returns the seed programs: the scenarios of jitter_test.go
// in small.
func jitterSeeds() map[string][]byte {
	seeds := make(map[string][]byte)
	add := func(name string, build func(p *jitterProgram)) {
		var p jitterProgram
		build(&p)
		seeds[name] = p
	}
	add("steady", func(p *jitterProgram) {
		p.config(0, 0, 0, 0)
		for range 60 {
			p.push(1, 0, 4)
			p.pop(20)
		}
		for range 10 {
			p.pop(20)
		}
	})
	add("jitter-reorder-dup", func(p *jitterProgram) {
		p.config(0, 0, 0, 0)
		for i := range 50 {
			switch i % 4 {
			case 0:
				p.push(2, int8(i%30), 5)
				p.push(-1, 0, 5)
			case 1:
				p.push(2, 0, 5)
				p.push(0, 0, 5) // a duplicate
			default:
				p.push(1, -int8(i%7), 5)
			}
			p.pop(20)
			p.level(byte(i * 13 % 128))
		}
	})
	add("loss-fec", func(p *jitterProgram) {
		p.config(0, 0x12, 0, 0)
		for i := range 60 {
			if i%5 == 3 {
				p.push(2, 0, 3) // one lost
			} else {
				p.push(1, 0, 3)
			}
			p.pop(20)
		}
	})
	add("stall-burst", func(p *jitterProgram) {
		p.config(0, 0, 0, 0)
		for range 20 {
			p.push(1, 0, 2)
			p.pop(20)
		}
		for range 10 {
			p.pop(20)
		}
		for range 15 {
			p.push(1, 0, 2)
		}
		for range 30 {
			p.push(1, 0, 2)
			p.pop(20)
		}
	})
	add("overflow-small", func(p *jitterProgram) {
		p.config(1, 0, 0, 0) // capacity 4
		for range 10 {
			p.push(1, 0, 1)
		}
		p.push(-9, 0, 1)
		p.wait(10)
		for range 10 {
			p.pop(20)
		}
	})
	add("restart-wrap", func(p *jitterProgram) {
		p.config(3, 0, 0, 0) // capacity 16
		p.restart(0xfffffff0, 0)
		for range 40 {
			p.push(1, 0, 6)
			p.pop(20)
		}
		p.restart(7, 5000)
		for range 20 {
			p.push(1, 0, 6)
			p.pop(20)
		}
		p.wait(200)
		for range 20 {
			p.push(1, 0, 6)
			p.pop(20)
		}
	})
	add("raw-extremes", func(p *jitterProgram) {
		p.config(0, 0, 0, 0)
		p.push(1, 0, 1)
		p.pushRaw(1<<31, -1<<63, 1)
		p.pop(20)
		p.pushRaw(2, 1<<62, 255)
		p.pop(20)
		p.push(1, 0, 1)
		p.pop(20)
	})
	add("far-clock", func(p *jitterProgram) {
		p.config(0, 0, 0, 0)
		for range 10 {
			p.push(1, 0, 1)
			p.pop(20)
		}
		p.restart(1000, 4801) // 4801 months: 400 years ahead
		for range 30 {
			p.push(1, 0, 1)
			p.pop(20)
		}
		p.restart(5, -4799)
		for range 30 {
			p.push(1, 0, 1)
			p.pop(20)
		}
	})
	add("config-odd", func(p *jitterProgram) {
		p.config(0xfe, 0xff, 0x1f, 0xff) // capacity 5, MaxDelay under MinDelay
		for range 30 {
			p.push(1, 10, 0)
			p.pop(25)
		}
	})
	return seeds
}

// writeSeeds writes one-[]byte seed files into testdata/fuzz/name.
func writeSeeds(f *testing.F, name string, seeds map[string][]byte) {
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for file, b := range seeds {
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(seed), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
