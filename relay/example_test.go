package relay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/parleychat/parley/protocol"
	"github.com/parleychat/parley/relay"
)

// A relay on a loopback port, and a client that joins a room, posts a
// message and reads it back with its sequence number.
func Example() {
	srv, err := relay.New(relay.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := protocol.DialInvite(ctx, srv.Invite(ln.Addr().String(), "lobby"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	joined, err := conn.Join(ctx, &protocol.Join{Room: "lobby", Name: "alice"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("joined", joined.Room, "as", joined.Name)
	if err := conn.Send(&protocol.SendChat{ClientID: 1, Text: "hello"}); err != nil {
		fmt.Println(err)
		return
	}
	// The Ack and the room's copy of the message may come in either order.
	for acked, echoed := false, false; !acked || !echoed; {
		m, err := conn.Receive(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		switch m := m.(type) {
		case *protocol.Ack:
			fmt.Println("acked as message", m.Seq)
			acked = true
		case *protocol.Chat:
			fmt.Printf("#%d <%s> %s\n", m.Seq, m.From, m.Text)
			echoed = true
		}
	}
	// Unordered output:
	// joined lobby as alice
	// acked as message 1
	// #1 <alice> hello
}
