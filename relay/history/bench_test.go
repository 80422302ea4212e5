package history

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkAppend stores chat messages the way a busy room does: 32
// senders, each sending its next message once the last one is committed,
// so that the committer groups them (one transaction and one fsync per
// batch). ns/op is per message.
func BenchmarkAppend(b *testing.B) {
	for _, where := range []string{"file", "memory"} {
		b.Run(where, func(b *testing.B) {
			path := ""
			if where == "file" {
				path = filepath.Join(b.TempDir(), "history.db")
			}
			s, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const senders = 32
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range senders {
				n := b.N / senders
				if w < b.N%senders {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan error, 1)
					from := fmt.Sprint("sender", w)
					for i := range n {
						s.Append(&AppendRequest{Room: "bench", From: from, ClientID: uint64(i + 1), Text: "a chat message of ordinary length",
							Done: func(_ *Entry, _ bool, err error) { done <- err }})
						if err := <-done; err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
