package relay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/parleychat/parley/protocol"
)

// rapidChecks sets how many cases rapid tries, unless -rapid.checks was
// given: each case here starts a relay and runs real connections, so the
// default of 100 is kept for make soak (which passes the flag).
func rapidChecks(n int) {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		flag.Set("rapid.checks", strconv.Itoa(n))
	}
}

// TestDeliveryProperties is a property test of the text delivery
// guarantees (docs/protocol.md §9.1) over a state machine: three members
// of a room send, disconnect at any point — also after the relay stored a
// message but before its ack reached the client — reconnect and resume,
// leave and come back, while the relay restarts on the same data
// directory. Throughout, each connection delivers messages in increasing
// sequence order and only above what the client resumed from, an ack
// never changes its sequence number, and the log never holds two messages
// with one sender and client id. In the end, once every member is back
// and every message acked: the log holds each message sent exactly once,
// with the sequence number its ack gave, and every member has seen the
// whole log, in order, exactly once. Shrunk counterexamples are kept in
// testdata/rapid/TestDeliveryProperties and replayed first on every run.
func TestDeliveryProperties(t *testing.T) {
	rapidChecks(50)
	rapid.Check(t, func(rt *rapid.T) {
		m := newDeliveryModel(rt)
		defer m.close()
		rt.Repeat(map[string]func(*rapid.T){
			"connect":        m.connect,
			"send":           m.send,
			"send and crash": m.sendAndCrash,
			"disconnect":     m.disconnect,
			"leave":          m.leave,
			"receive":        m.receive,
			"restart":        m.restart,
			"":               m.invariants,
		})
		m.settle()
	})
}

var modelNames = []string{"ann", "bob", "cyd"}

// deliveryModel is the state machine: the relay, and what each member
// knows.
type deliveryModel struct {
	rt  *rapid.T
	dir string
	ts  *testServer
	ln  net.Listener

	members map[string]*modelMember
	nextID  uint64
	sent    map[string]map[uint64]string // by sender: client id → text
	acked   map[string]map[uint64]uint64 // by sender: client id → seq
}

// modelMember is one member: its connection, if any, and what a client
// keeps across connections (docs/protocol.md §8.9).
type modelMember struct {
	name    string
	conn    *protocol.Conn
	resumed uint64 // after_seq of the connection's Join
	connMax uint64 // highest seq this connection delivered
	joined  bool   // joined at least once: later joins resume
	token   []byte
	lastSeq uint64
	outbox  []uint64          // unacked client ids, in send order
	seen    map[uint64]string // seq → text, as delivered
}

func newDeliveryModel(rt *rapid.T) *deliveryModel {
	dir, err := os.MkdirTemp("", "parley-rapid-")
	if err != nil {
		rt.Fatal(err)
	}
	m := &deliveryModel{rt: rt, dir: dir, members: map[string]*modelMember{},
		sent: map[string]map[uint64]string{}, acked: map[string]map[uint64]uint64{}}
	for _, n := range modelNames {
		m.members[n] = &modelMember{name: n, seen: map[uint64]string{}}
		m.sent[n], m.acked[n] = map[uint64]string{}, map[uint64]uint64{}
	}
	m.start()
	return m
}

func (m *deliveryModel) start() {
	srv, err := New(Config{DataDir: m.dir, Logger: testLoggerQuiet(), TextBurst: 1 << 16, TextPerMinute: 1 << 16, HistoryOnJoin: 65535})
	if err != nil {
		m.rt.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.rt.Fatal(err)
	}
	m.ts = &testServer{Server: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { m.ts.done <- srv.Serve(ln) }()
}

func (m *deliveryModel) stop() {
	for _, mem := range m.members {
		m.drop(mem)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.ts.Shutdown(ctx); err != nil {
		m.rt.Fatalf("Shutdown: %v", err)
	}
	<-m.ts.done
}

func (m *deliveryModel) close() {
	m.stop()
	os.RemoveAll(m.dir)
}

func (m *deliveryModel) member(rt *rapid.T) *modelMember {
	return m.members[rapid.SampledFrom(modelNames).Draw(rt, "member")]
}

// drop ends a member's connection at once, without a Goodbye.
func (m *deliveryModel) drop(mem *modelMember) {
	if mem.conn != nil {
		mem.conn.Abort()
		mem.conn = nil
	}
}

// dial connects a member, joins (resuming after the first time) and
// resends its unacknowledged messages in order.
func (m *deliveryModel) dial(mem *modelMember) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, m.ts.invite("lobby"), nil)
	if err != nil {
		m.rt.Fatalf("%s: dial: %v", mem.name, err)
	}
	j := &protocol.Join{Room: "lobby", Name: mem.name, Resume: mem.joined, AfterSeq: mem.lastSeq, Token: mem.token}
	joined, err := c.Join(ctx, j)
	if err != nil {
		c.Abort()
		if errors.Is(err, protocol.CodeNameTaken) {
			return // its previous session is still being torn down
		}
		m.rt.Fatalf("%s: join: %v", mem.name, err)
	}
	if joined.HeadSeq < mem.lastSeq {
		m.rt.Fatalf("%s: joined at head %d, below the %d it has seen: the history went back", mem.name, joined.HeadSeq, mem.lastSeq)
	}
	mem.conn, mem.joined, mem.token = c, true, joined.Token
	mem.resumed, mem.connMax = mem.lastSeq, mem.lastSeq
	if !j.Resume {
		mem.resumed, mem.connMax = 0, 0
	}
	for _, id := range mem.outbox {
		m.write(mem, id)
	}
}

func (m *deliveryModel) write(mem *modelMember, id uint64) {
	if err := mem.conn.Send(&protocol.SendChat{ClientID: id, Text: m.sent[mem.name][id]}); err != nil {
		m.drop(mem) // the connection failed: a reconnect resends
	}
}

func (m *deliveryModel) connect(rt *rapid.T) {
	if mem := m.member(rt); mem.conn == nil {
		m.dial(mem)
	}
}

// newMessage queues a new message of a member.
func (m *deliveryModel) newMessage(mem *modelMember) uint64 {
	m.nextID++
	id := m.nextID<<8 | uint64(len(mem.name)) // unique per sender, never 0
	m.sent[mem.name][id] = fmt.Sprintf("%s-%d", mem.name, m.nextID)
	mem.outbox = append(mem.outbox, id)
	return id
}

func (m *deliveryModel) send(rt *rapid.T) {
	mem := m.member(rt)
	id := m.newMessage(mem)
	if mem.conn != nil {
		m.write(mem, id)
	}
}

// sendAndCrash sends a message, waits until the relay has stored it, and
// then drops the connection before the client reads the ack: the client
// does not know it was stored, and resends it after it reconnects.
func (m *deliveryModel) sendAndCrash(rt *rapid.T) {
	mem := m.member(rt)
	if mem.conn == nil {
		rt.Skip("not connected")
	}
	id := m.newMessage(mem)
	m.write(mem, id)
	deadline := time.Now().Add(5 * time.Second)
	for mem.conn != nil {
		if _, ok, err := m.ts.store.Lookup("lobby", mem.name, id); err != nil {
			rt.Fatal(err)
		} else if ok {
			break
		}
		if time.Now().After(deadline) {
			rt.Fatalf("%s: message %d was not stored within 5 s", mem.name, id)
		}
		time.Sleep(time.Millisecond) // polling the store, which has no event for it
	}
	m.drop(mem)
}

func (m *deliveryModel) disconnect(rt *rapid.T) { m.drop(m.member(rt)) }

// leave leaves the room and closes the session with a Goodbye.
func (m *deliveryModel) leave(rt *rapid.T) {
	mem := m.member(rt)
	if mem.conn == nil {
		rt.Skip("not connected")
	}
	mem.conn.Send(&protocol.Leave{})
	mem.conn.Close()
	mem.conn = nil
}

func (m *deliveryModel) receive(rt *rapid.T) {
	mem := m.member(rt)
	if mem.conn == nil {
		rt.Skip("not connected")
	}
	m.drain(mem, 20*time.Millisecond)
}

func (m *deliveryModel) restart(rt *rapid.T) {
	m.stop()
	m.start()
}

// drain processes what a member's connection delivers until it has been
// quiet for d.
func (m *deliveryModel) drain(mem *modelMember, d time.Duration) {
	for mem.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		msg, err := mem.conn.Receive(ctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.drop(mem) // the connection ended
			}
			return
		}
		m.handle(mem, msg)
	}
}

func (m *deliveryModel) handle(mem *modelMember, msg protocol.Message) {
	rt := m.rt
	switch msg := msg.(type) {
	case *protocol.Chat:
		if msg.Seq <= mem.connMax {
			rt.Fatalf("%s: chat %d after %d on one connection (resumed after %d): out of order or a duplicate", mem.name, msg.Seq, mem.connMax, mem.resumed)
		}
		mem.connMax = msg.Seq
		if old, ok := mem.seen[msg.Seq]; ok && old != msg.Text {
			rt.Fatalf("%s: seq %d was %q, now %q", mem.name, msg.Seq, old, msg.Text)
		}
		if _, ok := mem.seen[msg.Seq]; ok {
			rt.Fatalf("%s: seq %d delivered a second time", mem.name, msg.Seq)
		}
		mem.seen[msg.Seq] = msg.Text
		mem.lastSeq = max(mem.lastSeq, msg.Seq)
	case *protocol.Synced:
		mem.lastSeq = max(mem.lastSeq, msg.Seq)
		mem.connMax = max(mem.connMax, msg.Seq)
	case *protocol.Ack:
		if seq, ok := m.acked[mem.name][msg.ClientID]; ok && seq != msg.Seq {
			rt.Fatalf("%s: message %d acked with seq %d, earlier with %d", mem.name, msg.ClientID, msg.Seq, seq)
		}
		m.acked[mem.name][msg.ClientID] = msg.Seq
		mem.outbox = slices.DeleteFunc(mem.outbox, func(id uint64) bool { return id == msg.ClientID })
	case *protocol.Gap:
		rt.Fatalf("%s: gap %d..%d with no retention", mem.name, msg.From, msg.To)
	case *protocol.Error:
		rt.Fatalf("%s: %v", mem.name, msg)
	}
}

// invariants run after every action: the log holds no message twice.
func (m *deliveryModel) invariants(rt *rapid.T) {
	head, _, err := m.ts.store.Head("lobby")
	if err != nil {
		rt.Fatal(err)
	}
	entries, err := m.ts.store.Range("lobby", 0, int(head)+1)
	if err != nil {
		rt.Fatal(err)
	}
	keys := map[string]uint64{}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			rt.Fatalf("the log's entry %d has seq %d", i, e.Seq)
		}
		k := fmt.Sprint(e.From, "/", e.ClientID)
		if s, dup := keys[k]; dup {
			rt.Fatalf("the log holds %s twice: seq %d and %d", k, s, e.Seq)
		}
		keys[k] = e.Seq
	}
}

// settle brings every member back, lets every message be acked and
// delivered, and checks the end state.
func (m *deliveryModel) settle() {
	rt := m.rt
	deadline := time.Now().Add(20 * time.Second)
	for {
		head, _, err := m.ts.store.Head("lobby")
		if err != nil {
			rt.Fatal(err)
		}
		done := true
		for _, n := range modelNames {
			mem := m.members[n]
			if mem.conn == nil {
				m.dial(mem)
			}
			m.drain(mem, 20*time.Millisecond)
			done = done && mem.conn != nil && len(mem.outbox) == 0 && mem.lastSeq == head
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for _, mem := range m.members {
				rt.Logf("%s: outbox %v, last seq %d, head %d", mem.name, mem.outbox, mem.lastSeq, head)
			}
			rt.Fatal("the members did not settle within 20 s")
		}
	}
	head, _, _ := m.ts.store.Head("lobby")
	entries, err := m.ts.store.Range("lobby", 0, int(head)+1)
	if err != nil {
		rt.Fatal(err)
	}
	stored := map[string]map[uint64]uint64{}
	for _, n := range modelNames {
		stored[n] = map[uint64]uint64{}
	}
	for _, e := range entries {
		if m.sent[e.From][e.ClientID] != e.Text {
			rt.Fatalf("seq %d is %q from %s (id %d), which was never sent", e.Seq, e.Text, e.From, e.ClientID)
		}
		stored[e.From][e.ClientID] = e.Seq
	}
	for _, n := range modelNames {
		for id := range m.sent[n] {
			seq, ok := stored[n][id]
			if !ok {
				rt.Fatalf("%s's message %d (%q) is not in the log", n, id, m.sent[n][id])
			}
			if a := m.acked[n][id]; a != seq {
				rt.Fatalf("%s's message %d was acked with seq %d, the log has it at %d", n, id, a, seq)
			}
		}
		mem := m.members[n]
		for _, e := range entries {
			if mem.seen[e.Seq] != e.Text {
				rt.Fatalf("%s saw %q at seq %d, the log has %q", n, mem.seen[e.Seq], e.Seq, e.Text)
			}
		}
		if len(mem.seen) != len(entries) {
			rt.Fatalf("%s saw %d messages, the log has %d", n, len(mem.seen), len(entries))
		}
	}
}

// testLoggerQuiet is testLogger for code that has no testing.TB.
func testLoggerQuiet() *slog.Logger { return testLogger(nil) }
