package relay

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/protocol"
)

// BenchmarkChatFanOut measures chat messages from one sender delivered to
// every member of a room of 10, through real TLS and yamux on loopback.
// One op is one message stored, acknowledged and received by all members.
func BenchmarkChatFanOut(b *testing.B) {
	for _, bc := range []struct {
		name string
		disk bool
	}{{"memory", false}, {"disk-fsync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{TextBurst: 65535, TextPerMinute: 65535, MaxTextLag: 1 << 20}
			if bc.disk {
				cfg.DataDir = b.TempDir()
			}
			ts := startServer(b, cfg)
			sender := dial(b, ts)
			sender.join("lobby", "sender")
			// The sender reads its acks, or the relay cuts it as a slow
			// consumer once their queue is full (some 13 000 messages in).
			drainClient(b, sender)
			const members = 9
			var receivers []*client
			for i := range members {
				c := dial(b, ts)
				c.join("lobby", "r"+string(rune('a'+i)))
				expect[*protocol.Synced](c, protocol.TypeMemberJoined)
				receivers = append(receivers, c)
			}
			done := make(chan int)
			for _, c := range receivers {
				go func() {
					n := 0
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					for n < b.N {
						m, err := c.conn.Receive(ctx)
						if err != nil {
							break
						}
						if _, ok := m.(*protocol.Chat); ok {
							n++
						}
					}
					done <- n
				}()
			}
			b.ResetTimer()
			go func() {
				for i := 1; i <= b.N; i++ {
					if err := sender.conn.Send(&protocol.SendChat{ClientID: uint64(i), Text: "a short chat message of about fifty bytes"}); err != nil {
						return
					}
				}
			}()
			for range receivers {
				if n := <-done; n != b.N {
					b.Fatalf("a receiver got %d of %d messages", n, b.N)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkAckRoundTrip measures one message at a time: send, then wait
// for its Ack, which the server sends only after the message is committed
// (and, on disk, fsynced).
func BenchmarkAckRoundTrip(b *testing.B) {
	for _, disk := range []bool{false, true} {
		name := "memory"
		cfg := Config{TextBurst: 65535, TextPerMinute: 65535}
		if disk {
			name, cfg.DataDir = "disk-fsync", b.TempDir()
		}
		b.Run(name, func(b *testing.B) {
			ts := startServer(b, cfg)
			c := dial(b, ts)
			c.join("lobby", "sender")
			id := uint64(0)
			for b.Loop() {
				id++
				if err := c.conn.Send(&protocol.SendChat{ClientID: id, Text: "ping"}); err != nil {
					b.Fatal(err)
				}
				expect[*protocol.Ack](c, protocol.TypeChat, protocol.TypeSynced, protocol.TypeMemberJoined)
			}
		})
	}
}
