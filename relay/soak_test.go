//go:build soak

package relay

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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
// talk, lose their connection, leave and come back as new clients. At the
// end every message a client had acknowledged is in its room's log once,
// every client saw a gapless run of its room's log once in order, and
// goroutines, file descriptors and heap are back to their baseline (and
// goleak checks in TestMain that nothing is left).
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
	for i, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			n := 0
			var pending []string
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(500+rng.IntN(4500)) * time.Millisecond): // the member's pace
				}
				if ctx.Err() != nil {
					break
				}
				switch r := rng.IntN(100); {
				case r < 80: // talk
					n++
					text := fmt.Sprintf("%s says %d", s.name, n)
					s.cur.c.Send(text)
					pending = append(pending, text)
					mu.Lock()
					counts["sent"]++
					mu.Unlock()
				case r < 90: // the connection drops
					s.cur.mu.Lock()
					conns := s.cur.conns
					s.cur.mu.Unlock()
					if len(conns) > 0 {
						conns[len(conns)-1].Close()
					}
					mu.Lock()
					counts["dropped"]++
					mu.Unlock()
				case r < 95: // flush: everything so far is acknowledged
					fctx, fcancel := context.WithTimeout(ctx, time.Minute)
					if s.cur.c.Flush(fctx) == nil {
						s.sent, pending = append(s.sent, pending...), nil
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
					mu.Lock()
					counts["rejoined"]++
					mu.Unlock()
				}
			}
			fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer fcancel()
			if err := s.cur.c.Flush(fctx); err != nil {
				t.Errorf("%s: the last flush: %v", s.name, err)
			}
			s.sent = append(s.sent, pending...)
		}()
	}
	wg.Wait()
	t.Logf("churn: %v; relay: %v", counts, ts.Stats().CloseReasons)

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
			tx := texts(m.events)
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
		link.Close()
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
		t.Errorf("%d goroutines after the soak, %d before", g, baseG)
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
