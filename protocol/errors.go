package protocol

import (
	"errors"
	"fmt"
)

// Why a connection ended when the peer said nothing (no Goodbye). Conn.Err
// wraps them.
var (
	// ErrKeepalive: the peer stopped answering yamux keepalive pings (a
	// network that fails silently, or a peer that hangs).
	ErrKeepalive = errors.New("no answer to keepalive pings")
	// ErrConnectionLost: the connection ended without a Goodbye. A relay
	// closes one so when its writes to the client are stuck (the client
	// did not read for WriteTimeout), when it crashes, or the network
	// fails.
	ErrConnectionLost = errors.New("the connection ended without a goodbye")
)

// ErrorCode is the reason carried by Error and Goodbye messages. It is also
// a Go error, so callers can write errors.Is(err, protocol.CodeNameTaken)
// for any error that carries a code.
type ErrorCode uint16

// Error codes. Codes below 100 close the session (sent in Goodbye); codes
// from 100 answer one request (sent in Error) and the session stays open.
// A receiver treats an unknown code below 100 as fatal and one from 100 as
// a failed request.
const (
	CodeNone ErrorCode = 0

	// Session-closing reasons.
	CodeMalformed       ErrorCode = 1  // a frame or payload that does not decode
	CodeVersion         ErrorCode = 2  // no protocol version in common
	CodeUnexpected      ErrorCode = 3  // a message not allowed now or on this stream
	CodeFrameTooLarge   ErrorCode = 4  // a declared length over the cap for its type
	CodeUnknownCritical ErrorCode = 5  // an unknown type flagged critical
	CodeTimeout         ErrorCode = 6  // TLS and hello not done within the deadline
	CodeTooManyStreams  ErrorCode = 7  // more streams than allowed
	CodeStreamRate      ErrorCode = 8  // streams opened, or pings sent, too fast
	CodeBadStream       ErrorCode = 9  // an unknown or duplicate stream kind
	CodeSlowConsumer    ErrorCode = 10 // the client did not read fast enough
	CodeReplaced        ErrorCode = 11 // a new session took over this member
	CodeShutdown        ErrorCode = 12 // the server is shutting down
	CodeInternal        ErrorCode = 13 // a server fault
	CodeLeaving         ErrorCode = 14 // the client is leaving normally
	CodeEnded           ErrorCode = 15 // the server's host ended it for good: do not reconnect

	// Request errors.
	CodeBadRequest    ErrorCode = 100 // a field out of range
	CodeNameTaken     ErrorCode = 101 // the name is in use in that room
	CodeBadPassword   ErrorCode = 102 // wrong or missing room password
	CodeBadName       ErrorCode = 103 // empty, too long, or not printable UTF-8
	CodeBadRoom       ErrorCode = 104 // room name not allowed
	CodeNotInRoom     ErrorCode = 105 // the request needs a joined room
	CodeAlreadyJoined ErrorCode = 106 // Join while in a room
	CodeRoomFull      ErrorCode = 107 // the room has its maximum of members
	CodeRateLimited   ErrorCode = 108 // over the text rate; retry after retry_after_ms
	CodeTextTooLong   ErrorCode = 109 // over the server's text limit
	CodeInvalidUTF8   ErrorCode = 110 // text is not valid UTF-8
	CodeEmptyText     ErrorCode = 111 // text is empty or only white space
	CodeNoSuchMember  ErrorCode = 112 // private message to a name not in the room
	CodeBadClientID   ErrorCode = 113 // client_id is zero
	CodeTryAgain      ErrorCode = 114 // a transient server failure; retry later
	CodeBadText       ErrorCode = 115 // text holds control characters other than tab and newline
)

var codeNames = map[ErrorCode]string{
	CodeNone:            "none",
	CodeMalformed:       "malformed",
	CodeVersion:         "version",
	CodeUnexpected:      "unexpected",
	CodeFrameTooLarge:   "frame too large",
	CodeUnknownCritical: "unknown critical",
	CodeTimeout:         "handshake timeout",
	CodeTooManyStreams:  "too many streams",
	CodeStreamRate:      "stream rate",
	CodeBadStream:       "bad stream",
	CodeSlowConsumer:    "slow consumer",
	CodeReplaced:        "replaced",
	CodeShutdown:        "shutdown",
	CodeInternal:        "internal",
	CodeLeaving:         "leaving",
	CodeEnded:           "ended",
	CodeBadRequest:      "bad request",
	CodeNameTaken:       "name taken",
	CodeBadPassword:     "bad password",
	CodeBadName:         "bad name",
	CodeBadRoom:         "bad room",
	CodeNotInRoom:       "not in room",
	CodeAlreadyJoined:   "already joined",
	CodeRoomFull:        "room full",
	CodeRateLimited:     "rate limited",
	CodeTextTooLong:     "text too long",
	CodeInvalidUTF8:     "invalid utf-8",
	CodeEmptyText:       "empty text",
	CodeNoSuchMember:    "no such member",
	CodeBadClientID:     "bad client id",
	CodeTryAgain:        "try again",
	CodeBadText:         "control characters in text",
}

func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Error makes a code usable as a sentinel for errors.Is.
func (c ErrorCode) Error() string { return "parley: " + c.String() }

// Fatal reports whether the code closes the session.
func (c ErrorCode) Fatal() bool { return c < 100 }

// Error is the Error message (TypeError): a request failed and the session
// stays open. It is also the Go error type for any failure that carries a
// code, including local decoding failures; errors.Is(err, code) matches it.
type Error struct {
	Code       ErrorCode
	Ref        uint64 // client_id of the SendChat this answers, or 0
	RetryAfter uint32 // milliseconds; set with CodeRateLimited and CodeTryAgain
	Message    string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.Error()
	}
	return e.Code.Error() + ": " + e.Message
}

// Is reports whether target is e's code.
func (e *Error) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

func errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code carried by err, or CodeNone.
func CodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c ErrorCode
	if errors.As(err, &c) {
		return c
	}
	return CodeNone
}
