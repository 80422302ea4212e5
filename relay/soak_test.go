//go:build soak

package relay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
	pclient "github.com/parleychat/parley/protocol/client"
	"github.com/parleychat/parley/relay/relaytest"
)

// Run with make soak: go test -race -tags soak -run Soak ./relay/.
var soakDuration = flag.Duration("soak.duration", 10*time.Minute, "how long TestSoak runs")

// TestSoakSilentPartition is TestSilentPartition at full length: a 60 s
// partition with the default keepalives (15 s, and 10 s to answer) on
// both sides, which both notice within 25 s.
func TestSoakSilentPartition(t *testing.T) {
	runPartition(t, partitionCase{name: "60 s", partition: 60 * time.Second,
		serverKeepalive: 15 * time.Second, serverWT: 10 * time.Second,
		clientKeepalive: 15 * time.Second, clientWT: 10 * time.Second, dialTimeout: 10 * time.Second})
}

// TestSoak runs 200 members in 10 rooms through links with latency,
// jitter and slicing (toxiproxy) for -soak.duration, with churn: members
// talk, lose their connection, leave and come back as new clients. A new
// client whose connection drops before it has joined fails (a first
// connection is not retried), and the member joins again, as a person
// does with the apps. At the end every message a client had acknowledged
// is in its room's log once, every client saw a gapless run of its room's
// log once in order, and goroutines (listed if they are not), file
// descriptors and heap are back to their baseline (and goleak checks in
// TestMain that nothing is left).
func TestSoak(t *testing.T) {
	const members, rooms = 200, 10
	dataDir := t.TempDir()
	ts := startServer(t, Config{DataDir: dataDir, TextBurst: 100, TextPerMinute: 600})
	runtime.GC()
	// File descriptors other than the history database's: database/sql
	// keeps up to 4 SQLite connections open (history.Store), two files
	// each, once reads have needed them.
	otherFDs := func() (n int) {
		for _, f := range fdTargets() {
			if !strings.HasPrefix(f, dataDir) {
				n++
			}
		}
		return n
	}
	baseG, baseFD, baseHeap := runtime.NumGoroutine(), otherFDs(), heapInUse()
	baseFDs := fdTargets()
	var links []*relaytest.Link
	for range 4 {
		link, err := relaytest.NewLink(ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, dir := range []relaytest.Direction{relaytest.Upstream, relaytest.Downstream} {
			if err := link.AddToxic("latency-"+string(dir), "latency", dir, map[string]any{"latency": 20, "jitter": 10}); err != nil {
				t.Fatal(err)
			}
		}
		if err := link.AddToxic("slicer", "slicer", relaytest.Downstream, map[string]any{"average_size": 64, "size_variation": 32, "delay": 10}); err != nil {
			t.Fatal(err)
		}
		links = append(links, link)
	}

	type slot struct {
		room, name string
		cur        *libMember
		done       []*libMember // earlier clients under the name, stopped
		sent       []string     // texts whose Flush returned: acknowledged
	}
	slots := make([]*slot, members)
	start := func(s *slot, i int) {
		s.cur = startMember(t, ts, s.room, s.name, memberOpts{addr: links[i%len(links)].Addr, owned: true})
	}
	for i := range slots {
		slots[i] = &slot{room: fmt.Sprint("room", i%rooms), name: fmt.Sprint("m", i)}
		start(slots[i], i)
	}
	for _, s := range slots {
		s.cur.waitConnected(1)
	}
	t.Logf("%d members in %d rooms; baseline before them and the links: %d goroutines, %d file descriptors, %d KiB heap", members, rooms, baseG, baseFD, baseHeap>>10)

	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	// How long a Flush with messages pending took, and a new client to
	// join, by the minute of the soak they began in.
	flushes, joins := newTimings(time.Now()), newTimings(time.Now())
	count := func(what string, n int) {
		mu.Lock()
		counts[what] += n
		mu.Unlock()
	}
	for i, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			n := 0
			var pending []string
			// Whether the churn dropped the current client's connection
			// before it joined, and whether the client is itself a second
			// try after a failed first connection.
			droppedEarly, retry := false, false
			// joinAgain does what a person does when the app says it could
			// not join: join again, as a new client. protocol/client
			// returns a failed first connection instead of retrying it
			// (parley-cli exits with it, the desktop app shows it); here
			// it fails when the churn drops a new client's connection
			// before its join completes. What was queued on that client
			// was never sent (a client sends only once joined), and the
			// app would show it unsent: it is no longer pending. It
			// reports false if the client's Run ended otherwise, which is
			// a failure.
			joinAgain := func() bool {
				ended, err := s.cur.runEnded()
				switch {
				case !ended:
					return true
				case s.cur.joined():
					t.Errorf("%s: Run returned after joining: %v", s.name, err)
					return false
				case pclient.Fatal(err):
					t.Errorf("%s: the first connection failed for good: %v", s.name, err)
					return false
				}
				why := "first connection failed (" + pclient.Reason(err) + ")"
				switch {
				case droppedEarly:
					why += " after a drop"
				case retry && errors.Is(err, protocol.CodeNameTaken):
					// The server has not yet seen the end of the failed
					// try's connection, whose join it had taken.
					why += " after a failed try"
				default:
					why += " otherwise"
					t.Logf("%s: the first connection failed: %v", s.name, err)
				}
				count(why, 1)
				count("unsent", len(pending))
				pending = nil
				s.cur.stop()
				s.done = append(s.done, s.cur)
				start(s, i)
				droppedEarly, retry = false, true
				return true
			}
			pace := func(ctx context.Context) {
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(500+rng.IntN(4500)) * time.Millisecond): // the member's pace
				}
			}
			for ctx.Err() == nil {
				pace(ctx)
				if ctx.Err() != nil {
					break
				}
				if !joinAgain() {
					return
				}
				switch r := rng.IntN(100); {
				case r < 80: // talk
					n++
					text := fmt.Sprintf("%s says %d", s.name, n)
					s.cur.c.Send(text)
					pending = append(pending, text)
					count("sent", 1)
				case r < 90: // the connection drops
					s.cur.mu.Lock()
					conns := s.cur.conns
					s.cur.mu.Unlock()
					if len(conns) > 0 {
						conns[len(conns)-1].Close()
					}
					count("dropped", 1)
					if !s.cur.joined() {
						count("dropped before the first join", 1)
						droppedEarly = true
					}
				case r < 95: // flush: everything so far is acknowledged
					fctx, fcancel := context.WithTimeout(ctx, time.Minute)
					t0, had := time.Now(), len(pending)
					if s.cur.c.Flush(fctx) == nil {
						s.sent, pending = append(s.sent, pending...), nil
						if had > 0 {
							flushes.add(t0, time.Since(t0))
						}
					}
					fcancel()
				default: // leave, and come back as a new client
					fctx, fcancel := context.WithTimeout(ctx, time.Minute)
					err := s.cur.c.Flush(fctx)
					fcancel()
					if err != nil {
						break
					}
					s.sent, pending = append(s.sent, pending...), nil
					s.cur.c.Leave()
					s.cur.stop()
					s.done = append(s.done, s.cur)
					start(s, i)
					droppedEarly, retry = false, false
					count("rejoined", 1)
				}
			}
			// The churn is over: the client under way joins (again, if
			// its first connection failed) and flushes.
			for attempt := 1; ; attempt++ {
				err := s.cur.firstJoin(2 * time.Minute)
				if err == nil {
					break
				}
				if ended, _ := s.cur.runEnded(); !ended || attempt == 5 {
					t.Errorf("%s: no join after the churn (attempt %d): %v", s.name, attempt, err)
					return
				}
				pace(context.Background()) // the person reads the error
				if !joinAgain() {
					return
				}
			}
			fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer fcancel()
			if err := s.cur.c.Flush(fctx); err != nil {
				_, runErr := s.cur.runEnded()
				t.Errorf("%s: the last flush: %v (Run: %v)", s.name, err, runErr)
				return
			}
			s.sent = append(s.sent, pending...)
		}()
	}
	wg.Wait()
	t.Logf("churn: %v; relay: %v", counts, ts.Stats().CloseReasons)
	for _, s := range slots {
		for _, m := range append(s.done, s.cur) {
			if d, ok := m.firstJoinTook(); ok {
				joins.add(m.started, d)
			}
		}
	}
	joins.log(t, "first joins")
	flushes.log(t, "flushes")

	// Every client under way reaches its room's head.
	for _, s := range slots {
		head, _, err := ts.store.Head(s.room)
		if err != nil {
			t.Fatal(err)
		}
		s.cur.waitEvents(fmt.Sprintf("seq %d", head), 2*time.Minute, func(evs []pclient.Event) bool {
			tx := texts(evs)
			return len(tx) > 0 && tx[len(tx)-1].Seq >= head
		})
	}
	// The logs hold every acknowledged message once; every client saw a
	// gapless, ordered run of its room's log.
	logs := map[string]map[uint64]string{}
	for r := range rooms {
		room := fmt.Sprint("room", r)
		head, _, _ := ts.store.Head(room)
		entries, err := ts.store.Range(room, 0, int(head)+1)
		if err != nil {
			t.Fatal(err)
		}
		logs[room] = map[uint64]string{}
		seen := map[string]bool{}
		for _, e := range entries {
			if seen[e.Text] {
				t.Errorf("%s holds %q twice", room, e.Text)
			}
			seen[e.Text] = true
			logs[room][e.Seq] = e.Text
		}
	}
	lost, runs := 0, 0
	for _, s := range slots {
		inLog := map[string]bool{}
		for _, text := range logs[s.room] {
			inLog[text] = true
		}
		for _, text := range s.sent {
			if !inLog[text] {
				lost++
				t.Errorf("%s's acknowledged %q is not in %s's log", s.name, text, s.room)
			}
		}
		for _, m := range append(s.done, s.cur) {
			runs++
			tx := texts(m.eventsSoFar())
			for j, ev := range tx {
				if logs[s.room][ev.Seq] != ev.Text {
					t.Errorf("%s saw %q at seq %d, the log has %q", s.name, ev.Text, ev.Seq, logs[s.room][ev.Seq])
					break
				}
				if j > 0 && ev.Seq != tx[j-1].Seq+1 {
					t.Errorf("%s saw seq %d after %d: a gap or a repeat", s.name, ev.Seq, tx[j-1].Seq)
					break
				}
			}
		}
	}
	total := 0
	for _, s := range slots {
		total += len(s.sent)
	}
	t.Logf("%d acknowledged messages, %d lost; %d client runs checked", total, lost, runs)

	for _, s := range slots {
		s.cur.c.Leave()
		s.cur.stop()
	}
	for _, link := range links {
		if err := link.Close(); err != nil {
			t.Error(err)
		}
	}
	slots, logs = nil, nil // the test's own records
	g := settle(t, "goroutines", baseG, runtime.NumGoroutine)
	fds := settle(t, "file descriptors", baseFD, otherFDs)
	heap := heapInUse()
	if fds > baseFD {
		t.Logf("file descriptors now: %v (before: %v)", fdTargets(), baseFDs)
	}
	t.Logf("after: %d goroutines (baseline %d), %d file descriptors besides the database's (%d; %d in all), %d KiB heap (%d KiB)",
		g, baseG, fds, baseFD, len(fdTargets()), heap>>10, baseHeap>>10)
	if g > baseG+2 {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines after the soak, %d before; now:\n%s", g, baseG, b.String())
	}
	if fds > baseFD {
		t.Errorf("%d file descriptors after the soak, %d before", fds, baseFD)
	}
	if heap > baseHeap+16<<20 {
		t.Errorf("heap %d KiB after the soak, %d KiB before", heap>>10, baseHeap>>10)
	}
}

// fdTargets lists what the process's file descriptors point to.
func fdTargets() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// timings collects durations by the minute of the soak they began in.
type timings struct {
	start time.Time
	mu    sync.Mutex
	by    map[int][]time.Duration
}

func newTimings(start time.Time) *timings {
	return &timings{start: start, by: map[int][]time.Duration{}}
}

func (ts *timings) add(at time.Time, d time.Duration) {
	minute := int(at.Sub(ts.start) / time.Minute)
	if at.Before(ts.start) {
		minute = -1
	}
	ts.mu.Lock()
	ts.by[minute] = append(ts.by[minute], d)
	ts.mu.Unlock()
}

// log logs the count, median, 95th percentile and maximum of each minute.
func (ts *timings) log(t *testing.T, what string) {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	minutes := slices.Sorted(maps.Keys(ts.by))
	var b strings.Builder
	for _, m := range minutes {
		ds := ts.by[m]
		slices.Sort(ds)
		label := fmt.Sprintf("minute %d", m+1)
		if m < 0 {
			label = "before"
		}
		fmt.Fprintf(&b, "\n  %s: %d, p50 %v, p95 %v, max %v", label, len(ds),
			ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)*95/100].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	t.Logf("%s:%s", what, b.String())
}
