package history

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type appended struct {
	e   *Entry
	dup bool
}

// appendSync stores one message and waits for its commit.
func appendSync(t *testing.T, s *Store, room, from, to string, id uint64, text string) appended {
	t.Helper()
	ch := make(chan appended, 1)
	var failed error
	s.Append(&AppendRequest{Room: room, From: from, To: to, ClientID: id, Text: text,
		Done: func(e *Entry, dup bool, err error) {
			failed = err
			ch <- appended{e, dup}
		}})
	r := <-ch
	if failed != nil {
		t.Fatalf("Append(%q, %d) failed: %v", text, id, failed)
	}
	return r
}

func openTemp(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestSequenceAndPersistence(t *testing.T) {
	s, path := openTemp(t, Options{})
	for i := 1; i <= 5; i++ {
		r := appendSync(t, s, "lobby", "alice", "", uint64(i), fmt.Sprintf("m%d", i))
		if r.e.Seq != uint64(i) || r.dup {
			t.Fatalf("append %d = seq %d dup %v, want seq %d", i, r.e.Seq, r.dup, i)
		}
	}
	if r := appendSync(t, s, "other", "bob", "", 1, "x"); r.e.Seq != 1 {
		t.Fatalf("first message of a second room has seq %d, want 1", r.e.Seq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head, low, err := s.Head("lobby")
	if err != nil || head != 5 || low != 1 {
		t.Fatalf("Head(lobby) after reopen = %d, %d, %v; want 5, 1", head, low, err)
	}
	es, err := s.Range("lobby", 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Seq != 3 || es[0].Text != "m3" || es[2].Seq != 5 {
		t.Fatalf("Range(lobby, 2) = %+v, want seqs 3..5", es)
	}
	if r := appendSync(t, s, "lobby", "alice", "", 6, "m6"); r.e.Seq != 6 {
		t.Fatalf("append after reopen got seq %d, want 6", r.e.Seq)
	}
}

// The history ID lives as long as the database: the same after reopening,
// different for another database or an in-memory one.
func TestHistoryID(t *testing.T) {
	s, path := openTemp(t, Options{})
	id := s.ID()
	s.Close()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, _ := openTemp(t, Options{})
	defer other.Close()
	mem, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if id == 0 || s.ID() != id {
		t.Fatalf("history ID %x, %x after reopening: want the same, not 0", id, s.ID())
	}
	if other.ID() == id || mem.ID() == id || mem.ID() == 0 {
		t.Fatalf("history IDs %x (file), %x (another file), %x (memory): want all different and not 0", id, other.ID(), mem.ID())
	}
}

func TestDuplicateClientID(t *testing.T) {
	s, _ := openTemp(t, Options{})
	defer s.Close()
	first := appendSync(t, s, "lobby", "alice", "", 42, "hello")
	again := appendSync(t, s, "lobby", "alice", "", 42, "hello")
	if !again.dup || again.e.Seq != first.e.Seq {
		t.Fatalf("resend = seq %d dup %v, want seq %d dup true", again.e.Seq, again.dup, first.e.Seq)
	}
	other := appendSync(t, s, "lobby", "bob", "", 42, "same id, other sender")
	if other.dup {
		t.Fatal("the same client id from another sender was taken as a duplicate")
	}
	if head, _, _ := s.Head("lobby"); head != 2 {
		t.Fatalf("head = %d, want 2", head)
	}
}

// Concurrent appends are grouped into few commits but keep one order: Done
// is called in sequence order.
func TestConcurrentAppendsInOrder(t *testing.T) {
	s, _ := openTemp(t, Options{})
	defer s.Close()
	var mu sync.Mutex
	var seqs []uint64
	var wg sync.WaitGroup
	const n = 400
	for i := 0; i < n; i++ {
		wg.Add(1)
		go s.Append(&AppendRequest{Room: "r", From: fmt.Sprint("u", i%7), ClientID: uint64(i + 1), Text: "x",
			Done: func(e *Entry, dup bool, err error) {
				defer wg.Done()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}})
	}
	wg.Wait()
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("Done #%d had seq %d, want %d", i, seq, i+1)
		}
	}
}

func TestRetentionByCount(t *testing.T) {
	var pruned []uint64
	s, _ := openTemp(t, Options{RetainCount: 3, OnPrune: func(room string, low uint64) { pruned = append(pruned, low) }})
	defer s.Close()
	for i := 1; i <= 10; i++ {
		appendSync(t, s, "lobby", "alice", "", uint64(i), "m")
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	head, low, _ := s.Head("lobby")
	if head != 10 || low != 8 {
		t.Fatalf("after pruning to 3: head %d low %d, want 10, 8", head, low)
	}
	if len(pruned) != 1 || pruned[0] != 8 {
		t.Fatalf("OnPrune calls = %v, want [8]", pruned)
	}
	es, _ := s.Range("lobby", 0, 100)
	if len(es) != 3 || es[0].Seq != 8 {
		t.Fatalf("retained %d messages starting at %d, want 3 starting at 8", len(es), es[0].Seq)
	}
	// Sequence numbers continue after retention.
	if r := appendSync(t, s, "lobby", "alice", "", 11, "m"); r.e.Seq != 11 {
		t.Fatalf("seq after prune = %d, want 11", r.e.Seq)
	}
}

func TestRetentionByAge(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	s, _ := openTemp(t, Options{RetainAge: time.Hour, Now: clock})
	defer s.Close()
	appendSync(t, s, "lobby", "a", "", 1, "old")
	appendSync(t, s, "lobby", "a", "", 2, "old")
	now = now.Add(2 * time.Hour)
	appendSync(t, s, "lobby", "a", "", 3, "new")
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if _, low, _ := s.Head("lobby"); low != 3 {
		t.Fatalf("low after age retention = %d, want 3", low)
	}
	now = now.Add(2 * time.Hour)
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if head, low, _ := s.Head("lobby"); head != 3 || low != 4 {
		t.Fatalf("all expired: head %d low %d, want 3, 4", head, low)
	}
}

func TestRecentStart(t *testing.T) {
	s, _ := openTemp(t, Options{})
	defer s.Close()
	for i := 1; i <= 10; i++ {
		to := ""
		if i%2 == 0 {
			to = "bob" // private messages do not count as room history
		}
		appendSync(t, s, "lobby", "alice", to, uint64(i), "m")
	}
	// Room messages are 1,3,5,7,9: the last three begin at 5.
	if got, _ := s.RecentStart("lobby", 3); got != 4 {
		t.Fatalf("RecentStart(3) = %d, want 4", got)
	}
	if got, _ := s.RecentStart("lobby", 100); got != 0 {
		t.Fatalf("RecentStart(100) = %d, want 0", got)
	}
	if got, _ := s.RecentStart("lobby", 0); got != 10 {
		t.Fatalf("RecentStart(0) = %d, want 10", got)
	}
}

func TestTokens(t *testing.T) {
	s, _ := openTemp(t, Options{})
	defer s.Close()
	if _, _, ok, err := s.Token("lobby", "bob"); ok || err != nil {
		t.Fatalf("Token before SetToken = ok %v err %v", ok, err)
	}
	if since, err := s.SetToken("lobby", "bob", []byte("h1")); err != nil || since != 0 {
		t.Fatalf("SetToken in an empty room = %d, %v; want 0", since, err)
	}
	for i := 1; i <= 3; i++ {
		appendSync(t, s, "lobby", "alice", "", uint64(i), "m")
	}
	if since, err := s.SetToken("lobby", "bob", []byte("h2")); err != nil || since != 3 {
		t.Fatalf("SetToken after 3 messages = %d, %v; want 3", since, err)
	}
	h, since, ok, err := s.Token("lobby", "bob")
	if !ok || err != nil || string(h) != "h2" || since != 3 {
		t.Fatalf("Token = %q, %d, %v, %v; want h2, 3", h, since, ok, err)
	}
}

func TestInMemory(t *testing.T) {
	s, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 3; i++ {
		appendSync(t, s, "lobby", "a", "", uint64(i), "m")
	}
	es, err := s.Range("lobby", 0, 10)
	if err != nil || len(es) != 3 {
		t.Fatalf("Range = %d entries, %v; want 3", len(es), err)
	}
}

func TestClosed(t *testing.T) {
	s, _ := openTemp(t, Options{})
	s.Close()
	var got error
	s.Append(&AppendRequest{Room: "r", From: "a", Text: "x", Done: func(_ *Entry, _ bool, err error) { got = err }})
	if !errors.Is(got, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", got)
	}
}

// TestQueriesUseIndexes: the committer's duplicate check looks a message
// up by its unique index, not by scanning the room (SQLite uses a partial
// index only when the query implies its condition: without "client_id !=
// 0" every append read the whole room, 480 µs a message at 10 000).
func TestQueriesUseIndexes(t *testing.T) {
	s, _ := openTemp(t, Options{})
	defer s.Close()
	for _, q := range []struct{ sql, want string }{
		{sqlFindDup, "USING INDEX messages_client"},
		{sqlLoadHead, "USING PRIMARY KEY"},
	} {
		rows, err := s.db.Query("EXPLAIN QUERY PLAN "+q.sql, "room", "sender", 1)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), q.want) {
			t.Errorf("the plan of %q is %q, want it %s", q.sql, plan, q.want)
		}
	}
}
