package relay

import (
	"fmt"

	"github.com/parleychat/parley/protocol"
)

// CloseReason says why the relay ended a session. Every session ends with
// exactly one; Stats.CloseReasons counts them, and the relay logs each
// close with its reason. Reasons that carry a protocol code (Code) are
// told to the client in a Goodbye when the connection can still carry one.
type CloseReason uint8

// Close reasons. The zero value is unknown.
const (
	CloseUnknown CloseReason = iota
	// The client ended the session.
	CloseLeft           // it said Goodbye
	CloseConnectionLost // its connection ended or failed without a Goodbye
	CloseKeepalive      // it stopped answering yamux keepalive pings
	// The client did not keep up (slow consumer, code 10).
	CloseWriteTimeout // a write to it did not complete within WriteTimeout
	CloseTextLag      // more than MaxTextLag messages behind, and no write completed for SlowConsumerGrace
	CloseQueueFull    // more than ControlQueueBytes of control messages and replies queued for it
	// The relay ended it.
	CloseReplaced // a new session took over its name (code 11)
	CloseShutdown // the relay is shutting down (code 12)
	CloseInternal // the relay could not read or store history (code 13)
	CloseEnded    // the relay's host ended it for good, with End (code 15)
	// The client broke the protocol (docs/protocol.md §7).
	CloseMalformed       // code 1
	CloseUnexpected      // code 3
	CloseFrameTooLarge   // code 4
	CloseUnknownCritical // code 5
	CloseKindTimeout     // code 6: a stream's kind byte did not come
	CloseTooManyStreams  // code 7
	CloseStreamRate      // code 8
	CloseBadStream       // code 9
	closeReasons         // number of reasons
)

var closeNames = [closeReasons]string{
	CloseUnknown:         "unknown",
	CloseLeft:            "left",
	CloseConnectionLost:  "connection lost",
	CloseKeepalive:       "keepalive timeout",
	CloseWriteTimeout:    "write timeout",
	CloseTextLag:         "text lag",
	CloseQueueFull:       "queue full",
	CloseReplaced:        "replaced",
	CloseShutdown:        "shutdown",
	CloseInternal:        "internal",
	CloseEnded:           "ended",
	CloseMalformed:       "malformed",
	CloseUnexpected:      "unexpected",
	CloseFrameTooLarge:   "frame too large",
	CloseUnknownCritical: "unknown critical",
	CloseKindTimeout:     "stream kind timeout",
	CloseTooManyStreams:  "too many streams",
	CloseStreamRate:      "stream rate",
	CloseBadStream:       "bad stream",
}

func (r CloseReason) String() string {
	if r < closeReasons {
		return closeNames[r]
	}
	return fmt.Sprintf("close reason %d", uint8(r))
}

// MarshalText gives the reason's name, so that maps keyed by reasons read
// well as JSON (in parleyd's logs).
func (r CloseReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Code returns the protocol code of the reason: what a Goodbye says and
// what Stats.Closes groups by. It is CodeNone when the client ended the
// session without a Goodbye, and CodeLeaving when it said one.
func (r CloseReason) Code() protocol.ErrorCode {
	switch r {
	case CloseLeft:
		return protocol.CodeLeaving
	case CloseWriteTimeout, CloseTextLag, CloseQueueFull:
		return protocol.CodeSlowConsumer
	case CloseReplaced:
		return protocol.CodeReplaced
	case CloseShutdown:
		return protocol.CodeShutdown
	case CloseEnded:
		return protocol.CodeEnded
	case CloseInternal:
		return protocol.CodeInternal
	case CloseMalformed:
		return protocol.CodeMalformed
	case CloseUnexpected:
		return protocol.CodeUnexpected
	case CloseFrameTooLarge:
		return protocol.CodeFrameTooLarge
	case CloseUnknownCritical:
		return protocol.CodeUnknownCritical
	case CloseKindTimeout:
		return protocol.CodeTimeout
	case CloseTooManyStreams:
		return protocol.CodeTooManyStreams
	case CloseStreamRate:
		return protocol.CodeStreamRate
	case CloseBadStream:
		return protocol.CodeBadStream
	}
	return protocol.CodeNone
}

// group is the reason's key in Stats.Closes: its code's name, "left" for
// a Goodbye from the client, and "connection lost" for the rest.
func (r CloseReason) group() string {
	switch c := r.Code(); c {
	case protocol.CodeNone:
		return "connection lost"
	case protocol.CodeLeaving:
		return "left"
	default:
		return c.String()
	}
}

// closeReasonFor returns the reason for a fatal protocol code.
func closeReasonFor(code protocol.ErrorCode) CloseReason {
	for r := CloseReplaced; r < closeReasons; r++ {
		if r.Code() == code {
			return r
		}
	}
	switch code {
	case protocol.CodeLeaving:
		return CloseLeft
	case protocol.CodeSlowConsumer:
		return CloseWriteTimeout
	case protocol.CodeNone:
		return CloseConnectionLost
	}
	return CloseUnknown
}
