// Package history stores room chat durably in SQLite (modernc.org/sqlite, pure
// Go): per-room sequence numbers, idempotent appends keyed by the sender's
// client id, retention by count and age, and resume tokens.
//
// All writes go through one committer goroutine that groups concurrent
// appends into one transaction and one fsync (group commit), assigns
// sequence numbers in commit order and then calls each request's Done in
// that order. Reads use their own connections and never wait for the
// committer (WAL mode).
package history

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Entry is one stored chat message. Entries are immutable once returned.
type Entry struct {
	Seq      uint64
	Time     int64 // Unix milliseconds
	From     string
	To       string // empty for room messages
	ClientID uint64
	Text     string
}

// Options configure a Store. Zero values mean the defaults in the comments.
type Options struct {
	// RetainCount keeps at most this many messages per room (0: no limit).
	RetainCount int
	// RetainAge removes messages older than this (0: no limit).
	RetainAge time.Duration
	// OnPrune is called, on the committer goroutine, with a room's new
	// lowest retained sequence number after retention removed messages.
	OnPrune func(room string, low uint64)
	// MaxBatch caps the appends grouped into one transaction (default 512).
	MaxBatch int
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// AppendRequest asks for one message to be stored.
type AppendRequest struct {
	Room, From, To string
	ClientID       uint64 // 0: no idempotency
	Text           string
	// Done is called on the committer goroutine once the transaction that
	// holds the message is committed and synced, in sequence order. dup is
	// true when an earlier request with the same room, sender and client
	// id was already stored; e is then that earlier entry.
	Done func(e *Entry, dup bool, err error)
}

// Store is a history database.
type Store struct {
	id    uint64
	db    *sql.DB
	wc    *sql.Conn   // the committer's connection
	stmts *statements // the committer's prepared statements
	opts  Options
	reqs  chan request
	stop  chan struct{}
	done  chan struct{}

	// broken is the first commit failure; the committer then fails every
	// later write, so that no message is stored after one that was lost
	// (which would break a sender's order). Owned by the committer.
	broken error

	mu    sync.Mutex // guards rooms
	rooms map[string]*roomState

	// closeMu makes Close wait for callers that are queueing requests, so
	// that no request is queued after the committer has stopped.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu
}

type roomState struct{ head, low uint64 }

type request struct {
	app   *AppendRequest
	token *tokenWrite
	prune chan error
}

type tokenWrite struct {
	room, name string
	hash       []byte
	since      uint64
	done       chan error
}

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("history: store closed")

const schema = `
CREATE TABLE IF NOT EXISTS rooms (
	name TEXT PRIMARY KEY,
	head INTEGER NOT NULL,  -- newest sequence number given out
	low  INTEGER NOT NULL   -- lowest sequence number not removed by retention
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
	room      TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	time      INTEGER NOT NULL,
	sender    TEXT NOT NULL,
	recipient TEXT NOT NULL,
	client_id INTEGER NOT NULL,
	text      TEXT NOT NULL,
	PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client ON messages (room, sender, client_id) WHERE client_id != 0;
CREATE INDEX IF NOT EXISTS messages_time ON messages (room, time);
CREATE TABLE IF NOT EXISTS tokens (
	room  TEXT NOT NULL,
	name  TEXT NOT NULL,
	hash  BLOB NOT NULL,
	since INTEGER NOT NULL,
	PRIMARY KEY (room, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
`

// Open opens or creates the database at path. An empty path opens a
// database in memory, which loses everything on Close.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 512
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	memory := path == ""
	var dsn string
	if memory {
		dsn = "file::memory:?_pragma=foreign_keys(0)"
	} else {
		// WAL with synchronous=FULL: a commit returns after the WAL is
		// fsynced, which is what an ack promises.
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("history: opening %s: %w", path, err)
	}
	if memory {
		db.SetMaxOpenConns(1) // each connection to :memory: is its own database
	} else {
		db.SetMaxOpenConns(4)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("history: creating schema in %s: %w", path, err)
	}
	id, err := historyID(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("history: %s: %w", path, err)
	}
	stmts, err := prepareStatements(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	wc, err := db.Conn(ctx)
	if err != nil {
		stmts.close()
		db.Close()
		return nil, fmt.Errorf("history: %w", err)
	}
	if memory {
		// The one connection belongs to the committer; reads share it
		// through the pool only when it is idle, so give it back.
		wc.Close()
		wc = nil
	}
	s := &Store{
		id:    id,
		db:    db,
		wc:    wc,
		stmts: stmts,
		opts:  opts,
		reqs:  make(chan request, 1024),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		rooms: make(map[string]*roomState),
	}
	go s.commitLoop()
	return s, nil
}

// historyID reads the database's random identity, creating it with the
// database. Sequence numbers are only comparable within one identity: a
// server whose history was deleted or replaced numbers from 1 again.
func historyID(ctx context.Context, db *sql.DB) (uint64, error) {
	var b [8]byte
	rand.Read(b[:])
	fresh := int64(binary.BigEndian.Uint64(b[:]) | 1) // never 0, which means "unknown"
	if _, err := db.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('history_id', ?)`, fresh); err != nil {
		return 0, fmt.Errorf("creating the history id: %w", err)
	}
	var id int64
	if err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'history_id'`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the history id: %w", err)
	}
	return uint64(id), nil
}

// ID identifies this history: it is made with the database and kept for
// its life, so a client can tell a restarted server (same ID, sequence
// numbers continue) from one whose history was reset (new ID, numbering
// starts over). It is never 0.
func (s *Store) ID() uint64 { return s.id }

// Close lets the committer finish the requests already queued, then closes
// the database.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.stop)
	<-s.done
	if s.wc != nil {
		s.wc.Close()
	}
	s.stmts.close()
	return s.db.Close()
}

// Append queues r. It blocks only while the queue is full.
func (s *Store) Append(r *AppendRequest) {
	if !s.enqueue(request{app: r}) {
		r.Done(nil, false, ErrClosed)
	}
}

// enqueue queues a request for the committer, or reports that the store is
// closed.
func (s *Store) enqueue(r request) bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return false
	}
	s.reqs <- r
	return true
}

// SetToken durably records the resume token hash for a member name. It
// returns the room's head at the moment the token was stored: the holder
// may see private messages stored after it, and none before. Taking the
// head in the committer, not earlier, leaves no window for a message in
// flight to land above it unseen.
func (s *Store) SetToken(room, name string, hash []byte) (since uint64, err error) {
	tw := &tokenWrite{room: room, name: name, hash: hash, done: make(chan error, 1)}
	if !s.enqueue(request{token: tw}) {
		return 0, ErrClosed
	}
	err = <-tw.done
	return tw.since, err
}

// Forget drops the cached position of a room that is no longer active.
func (s *Store) Forget(room string) {
	s.mu.Lock()
	delete(s.rooms, room)
	s.mu.Unlock()
}

// Prune applies the retention limits now.
func (s *Store) Prune() error {
	ch := make(chan error, 1)
	if !s.enqueue(request{prune: ch}) {
		return ErrClosed
	}
	return <-ch
}

// Head returns a room's newest sequence number and the lowest one not
// removed by retention (head+1 when nothing is retained). A room that was
// never written has head 0 and low 1.
func (s *Store) Head(room string) (head, low uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, err := s.roomLocked(room)
	if err != nil {
		return 0, 0, err
	}
	return rs.head, rs.low, nil
}

// roomLocked returns the cached state of a room, loading it on first use.
// The cache is the committer's truth: it is updated as each commit lands.
func (s *Store) roomLocked(room string) (*roomState, error) {
	if rs := s.rooms[room]; rs != nil {
		return rs, nil
	}
	rs := &roomState{low: 1}
	err := s.db.QueryRow(`SELECT head, low FROM rooms WHERE name = ?`, room).Scan(&rs.head, &rs.low)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("history: loading room %q: %w", room, err)
	}
	s.rooms[room] = rs
	return rs, nil
}

// Range returns up to limit entries of a room with sequence numbers after
// after, in order.
func (s *Store) Range(room string, after uint64, limit int) ([]*Entry, error) {
	rows, err := s.db.Query(`SELECT seq, time, sender, recipient, client_id, text FROM messages
		WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?`, room, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("history: reading room %q: %w", room, err)
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		e := new(Entry)
		var clientID int64
		if err := rows.Scan(&e.Seq, &e.Time, &e.From, &e.To, &clientID, &e.Text); err != nil {
			return nil, fmt.Errorf("history: reading room %q: %w", room, err)
		}
		e.ClientID = uint64(clientID)
		out = append(out, e)
	}
	return out, rows.Err()
}

// RecentStart returns the sequence number after which the last n room
// (not private) messages of a room begin: a fresh member's starting point.
func (s *Store) RecentStart(room string, n int) (uint64, error) {
	head, low, err := s.Head(room)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return head, nil
	}
	var seq uint64
	err = s.db.QueryRow(`SELECT seq FROM messages WHERE room = ? AND recipient = ''
		ORDER BY seq DESC LIMIT 1 OFFSET ?`, room, n-1).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return low - 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("history: reading room %q: %w", room, err)
	}
	return seq - 1, nil
}

// Lookup returns the stored message of a room with a sender's client id.
func (s *Store) Lookup(room, from string, clientID uint64) (*Entry, bool, error) {
	e := &Entry{From: from, ClientID: clientID}
	err := s.db.QueryRow(sqlFindDup, room, from, int64(clientID)).Scan(&e.Seq, &e.Time, &e.To, &e.Text)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("history: looking up a message: %w", err)
	}
	return e, true, nil
}

// Token returns the resume token hash recorded for a member name and the
// sequence number from which that holder may see private messages.
func (s *Store) Token(room, name string) (hash []byte, since uint64, ok bool, err error) {
	err = s.db.QueryRow(`SELECT hash, since FROM tokens WHERE room = ? AND name = ?`, room, name).Scan(&hash, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("history: reading token: %w", err)
	}
	return hash, since, true, nil
}
