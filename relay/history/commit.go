package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// commitLoop is the committer goroutine: it owns every write.
func (s *Store) commitLoop() {
	defer close(s.done)
	heads := make(map[string]*roomState) // the committer's own view, loaded from its transactions
	batch := make([]request, 0, s.opts.MaxBatch)
	stopping := false
	for {
		batch = batch[:0]
		if stopping {
			// Close has made sure nothing more is queued: finish what is.
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				return
			}
		} else {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			case <-s.stop:
				stopping = true
				continue
			}
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		for len(batch) > 0 {
			// A prune runs in a transaction of its own, in queue order.
			i := 0
			for i < len(batch) && batch[i].prune == nil {
				i++
			}
			if i > 0 {
				s.commitBatch(heads, batch[:i])
			}
			if i < len(batch) {
				batch[i].prune <- s.prune(heads)
				i++
			}
			batch = batch[i:]
		}
	}
}

func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	if s.wc != nil {
		return s.wc.BeginTx(ctx, nil)
	}
	return s.db.BeginTx(ctx, nil)
}

type result struct {
	e   *Entry
	dup bool
}

// The committer's statements, prepared once when the store opens: SQLite
// compiles a statement on every prepare, which cost more than running it
// (a message is a duplicate check and an insert).
const (
	sqlLoadHead = `SELECT head, low FROM rooms WHERE name = ?`
	sqlFindDup  = `SELECT seq, time, recipient, text FROM messages WHERE room = ? AND sender = ? AND client_id = ? AND client_id != 0`
	sqlInsert   = `INSERT INTO messages (room, seq, time, sender, recipient, client_id, text) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlSetHead  = `INSERT INTO rooms (name, head, low) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET head = excluded.head`
	sqlSetToken = `INSERT INTO tokens (room, name, hash, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (room, name) DO UPDATE SET hash = excluded.hash, since = excluded.since`
)

// statements are the committer's prepared statements (on the database;
// database/sql prepares each on the committer's connection once).
type statements struct {
	loadHead, findDup, insert, setHead, setToken *sql.Stmt
}

func prepareStatements(ctx context.Context, db *sql.DB) (*statements, error) {
	st := new(statements)
	for _, p := range []struct {
		s   **sql.Stmt
		sql string
	}{{&st.loadHead, sqlLoadHead}, {&st.findDup, sqlFindDup}, {&st.insert, sqlInsert}, {&st.setHead, sqlSetHead}, {&st.setToken, sqlSetToken}} {
		s, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("history: preparing %q: %w", p.sql, err)
		}
		*p.s = s
	}
	return st, nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.loadHead, st.findDup, st.insert, st.setHead, st.setToken} {
		if s != nil {
			s.Close()
		}
	}
}

// txStatements binds the committer's statements to one transaction, each
// when it is first used.
type txStatements struct {
	ctx   context.Context
	tx    *sql.Tx
	st    *statements
	bound map[*sql.Stmt]*sql.Stmt
}

func (t *txStatements) get(s *sql.Stmt) *sql.Stmt {
	if b := t.bound[s]; b != nil {
		return b
	}
	if t.bound == nil {
		t.bound = make(map[*sql.Stmt]*sql.Stmt, 5)
	}
	b := t.tx.StmtContext(t.ctx, s)
	t.bound[s] = b
	return b
}

// commitBatch stores a batch of appends and token writes in one transaction.
func (s *Store) commitBatch(heads map[string]*roomState, batch []request) {
	if s.broken != nil {
		s.failBatch(batch, s.broken)
		return
	}
	ctx := context.Background()
	results := make([]result, len(batch))
	touched := make(map[string]*roomState)
	err := func() error {
		tx, err := s.begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ts := &txStatements{ctx: ctx, tx: tx, st: s.stmts}
		now := s.opts.Now().UnixMilli()
		for i, r := range batch {
			switch {
			case r.app != nil:
				rs, err := loadHead(ts, heads, r.app.Room)
				if err != nil {
					return err
				}
				res, err := appendOne(ts, rs, r.app, now)
				if err != nil {
					return err
				}
				results[i] = res
				if !res.dup {
					touched[r.app.Room] = rs
				}
			case r.token != nil:
				t := r.token
				rs, err := loadHead(ts, heads, t.room)
				if err != nil {
					return err
				}
				t.since = rs.head
				if _, err := ts.get(ts.st.setToken).ExecContext(ctx, t.room, t.name, t.hash, int64(t.since)); err != nil {
					return fmt.Errorf("history: storing token: %w", err)
				}
			}
		}
		for room, rs := range touched {
			if _, err := ts.get(ts.st.setHead).ExecContext(ctx, room, int64(rs.head), int64(rs.low)); err != nil {
				return fmt.Errorf("history: storing head of %q: %w", room, err)
			}
		}
		return tx.Commit()
	}()
	if err != nil {
		// Sequence numbers handed out in the failed transaction are void:
		// forget the cached heads so they are read again.
		for room := range touched {
			delete(heads, room)
		}
		s.broken = fmt.Errorf("history: the store stopped after a failed commit: %w", err)
		s.failBatch(batch, err)
		return
	}
	s.mu.Lock()
	for room, rs := range touched {
		s.rooms[room] = &roomState{head: rs.head, low: rs.low}
	}
	s.mu.Unlock()
	for i, r := range batch {
		switch {
		case r.app != nil:
			r.app.Done(results[i].e, results[i].dup, nil)
		case r.token != nil:
			r.token.done <- nil
		}
	}
}

func (s *Store) failBatch(batch []request, err error) {
	for _, r := range batch {
		switch {
		case r.app != nil:
			r.app.Done(nil, false, err)
		case r.token != nil:
			r.token.done <- err
		}
	}
}

func loadHead(ts *txStatements, heads map[string]*roomState, room string) (*roomState, error) {
	if rs := heads[room]; rs != nil {
		return rs, nil
	}
	rs := &roomState{low: 1}
	err := ts.get(ts.st.loadHead).QueryRowContext(ts.ctx, room).Scan(&rs.head, &rs.low)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("history: loading room %q: %w", room, err)
	}
	heads[room] = rs
	return rs, nil
}

func appendOne(ts *txStatements, rs *roomState, r *AppendRequest, now int64) (result, error) {
	if r.ClientID != 0 {
		e := &Entry{From: r.From, ClientID: r.ClientID}
		err := ts.get(ts.st.findDup).QueryRowContext(ts.ctx, r.Room, r.From, int64(r.ClientID)).
			Scan(&e.Seq, &e.Time, &e.To, &e.Text)
		if err == nil {
			return result{e: e, dup: true}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return result{}, fmt.Errorf("history: checking for a duplicate: %w", err)
		}
	}
	e := &Entry{Seq: rs.head + 1, Time: now, From: r.From, To: r.To, ClientID: r.ClientID, Text: r.Text}
	if _, err := ts.get(ts.st.insert).ExecContext(ts.ctx, r.Room, int64(e.Seq), e.Time, e.From, e.To, int64(e.ClientID), e.Text); err != nil {
		return result{}, fmt.Errorf("history: storing a message: %w", err)
	}
	rs.head = e.Seq
	return result{e: e}, nil
}

// prune applies retention to every room in one transaction.
func (s *Store) prune(heads map[string]*roomState) error {
	if s.opts.RetainCount <= 0 && s.opts.RetainAge <= 0 {
		return nil
	}
	ctx := context.Background()
	type change struct {
		room string
		low  uint64
	}
	var changes []change
	err := func() error {
		tx, err := s.begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, `SELECT name, head, low FROM rooms`)
		if err != nil {
			return err
		}
		type roomRow struct {
			name      string
			head, low uint64
		}
		var rooms []roomRow
		for rows.Next() {
			var r roomRow
			if err := rows.Scan(&r.name, &r.head, &r.low); err != nil {
				rows.Close()
				return err
			}
			rooms = append(rooms, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		cutoff := s.opts.Now().Add(-s.opts.RetainAge).UnixMilli()
		for _, r := range rooms {
			low := r.low
			if s.opts.RetainCount > 0 && r.head >= uint64(s.opts.RetainCount) {
				low = max(low, r.head-uint64(s.opts.RetainCount)+1)
			}
			if s.opts.RetainAge > 0 {
				// The first message young enough to keep; none: all go.
				var first sql.NullInt64
				if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM messages WHERE room = ? AND seq >= ? AND time >= ?`,
					r.name, int64(low), cutoff).Scan(&first); err != nil {
					return err
				}
				if first.Valid {
					low = max(low, uint64(first.Int64))
				} else {
					low = r.head + 1
				}
			}
			if low == r.low {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE room = ? AND seq < ?`, r.name, int64(low)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE rooms SET low = ? WHERE name = ?`, int64(low), r.name); err != nil {
				return err
			}
			changes = append(changes, change{r.name, low})
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("history: applying retention: %w", err)
	}
	s.mu.Lock()
	for _, c := range changes {
		if rs := heads[c.room]; rs != nil {
			rs.low = c.low
		}
		if rs := s.rooms[c.room]; rs != nil {
			rs.low = c.low
		}
	}
	s.mu.Unlock()
	if s.opts.OnPrune != nil {
		for _, c := range changes {
			s.opts.OnPrune(c.room, c.low)
		}
	}
	return nil
}
