package protocol

import (
	"bytes"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
)

// yamuxPair returns the two ends of one yamux stream over loopback TCP
// (no TLS: what is measured is the stream and the frame reader).
func yamuxPair(b *testing.B) (client, server net.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	sc := <-accepted
	cs, err := yamux.Client(cc, yamuxConfig(0, 0, 8))
	if err != nil {
		b.Fatal(err)
	}
	ss, err := yamux.Server(sc, yamuxConfig(0, 0, 8))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close(); ss.Close() })
	client, err = cs.OpenStream()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := client.Write([]byte{0}); err != nil { // yamux opens a stream with its first frame
		b.Fatal(err)
	}
	server, err = ss.AcceptStream()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	return client, server
}

// BenchmarkReadVoice reads voice frames from a yamux stream, each written
// by the sender in a yamux write of its own: what a relay's voice reader
// does for every frame a speaker sends.
func BenchmarkReadVoice(b *testing.B) {
	client, server := yamuxPair(b)
	v := &Voice{Source: 7, Seq: 1, Captured: 1700000000000000, Codec: CodecOpus, Level: 30, Data: bytes.Repeat([]byte{1}, 100)}
	frame, err := v.AppendBinary(nil)
	if err != nil {
		b.Fatal(err)
	}
	st := newStream(server, KindVoice)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := client.Write(frame); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if _, _, err := st.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
