package protocol_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"time"

	"github.com/parleychat/parley/protocol"
)

func ExampleMarshal() {
	b, err := protocol.Marshal(&protocol.SendChat{ClientID: 42, Text: "héllo"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("header  % x\n", b[:protocol.HeaderSize])
	fmt.Printf("payload % x\n", b[protocol.HeaderSize:])
	// Output:
	// header  30 00 00 00 00 13
	// payload 00 00 00 00 00 00 00 2a 00 00 00 00 06 68 c3 a9 6c 6c 6f
}

func ExampleDecodeFrame() {
	b, err := protocol.Marshal(&protocol.SendChat{ClientID: 42, To: "zoë", Text: "hi there"})
	if err != nil {
		log.Fatal(err)
	}
	m, n, err := protocol.DecodeFrame(b)
	if err != nil {
		log.Fatal(err)
	}
	switch m := m.(type) {
	case *protocol.SendChat:
		fmt.Printf("%s, %d bytes: client_id=%d to=%q text=%q\n", m.Type(), n, m.ClientID, m.To, m.Text)
	default:
		fmt.Println("unexpected", m.Type())
	}
	// Output:
	// send-chat, 31 bytes: client_id=42 to="zoë" text="hi there"
}

func ExampleFrameReader() {
	var stream bytes.Buffer
	for _, m := range []protocol.Message{&protocol.Ping{Nonce: 1}, &protocol.Synced{Seq: 7}} {
		b, err := m.AppendBinary(nil)
		if err != nil {
			log.Fatal(err)
		}
		stream.Write(b)
	}
	fr := protocol.NewFrameReader(&stream)
	for {
		h, p, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		m, err := protocol.Decode(h.Type, p)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s on the %s stream: %+v\n", h.Type, h.Type.Kind(), m)
	}
	// Output:
	// ping on the control stream: &{Nonce:1}
	// synced on the text stream: &{Seq:7}
}

func ExampleParseInvite() {
	inv, err := protocol.ParseInvite("parley://chat.example.org/dev-team?fp=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(inv.Addr)
	fmt.Println(inv.Room)
	fmt.Println(inv.Fingerprint)

	inv, err = protocol.ParseInvite("parley://[::1]")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(inv)

	_, err = protocol.ParseInvite("parley://chat.example.org/no spaces")
	fmt.Println(protocol.CodeOf(err).String())
	// Output:
	// chat.example.org:7700
	// dev-team
	// 47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU
	// parley://[::1]:7700/lobby
	// bad room
}

// selfSigned returns a throwaway ed25519 certificate and its fingerprint.
func selfSigned() (tls.Certificate, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, protocol.Fingerprint(leaf), nil
}

func ExampleDial() {
	cert, fp, err := selfSigned()
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	// The server: one session, answering pings until the client says
	// goodbye. It reports what it saw when it is done.
	served := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err.Error()
			return
		}
		sc, err := protocol.Handshake(context.Background(), c, &protocol.ServerConfig{
			Certificate: cert,
			Welcome:     protocol.Welcome{Software: "example-server/1.0", MaxTextBytes: 4096},
		})
		if err != nil {
			served <- err.Error()
			return
		}
		defer sc.Close()
		for {
			m, err := sc.Control().ReadMessage()
			if err != nil {
				served <- err.Error()
				return
			}
			switch m := m.(type) {
			case *protocol.Ping:
				// An error here can only mean the session is over;
				// the loop then reads what the client sent last.
				_ = sc.Control().WriteMessage(&protocol.Pong{Nonce: m.Nonce})
			case *protocol.Goodbye:
				served <- fmt.Sprintf("server: hello from %s, goodbye with code %q", sc.Hello().Software, m.Code.String())
				return
			}
		}
	}()

	// The client pins the server's key with the invite's fingerprint.
	inv := protocol.Invite{Addr: ln.Addr().String(), Room: "lobby", Fingerprint: fp}
	conn, err := protocol.Dial(context.Background(), inv, &protocol.DialConfig{Software: "example-client/1.0"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("client: welcome from", conn.Welcome().Software)
	if _, err := conn.Ping(context.Background()); err != nil {
		log.Fatal(err)
	}
	conn.Close() // says goodbye
	fmt.Println(<-served)
	// Output:
	// client: welcome from example-server/1.0
	// server: hello from example-client/1.0, goodbye with code "leaving"
}
