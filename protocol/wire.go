package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Encoding helpers. Encoders check field lengths first (validate) and then
// append without further checks, so a message that validates always encodes.

func appendU16(b []byte, v uint16) []byte   { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte   { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte   { return binary.BigEndian.AppendUint64(b, v) }
func appendStr8(b []byte, s string) []byte  { return append(append(b, byte(len(s))), s...) }
func appendStr16(b []byte, s string) []byte { return append(appendU16(b, uint16(len(s))), s...) }
func appendStr32(b []byte, s string) []byte { return append(appendU32(b, uint32(len(s))), s...) }
func appendBytes8(b []byte, p []byte) []byte {
	return append(append(b, byte(len(p))), p...)
}

// decoder reads fields from a payload. The first failure sticks: later reads
// return zero values and done reports the first error, so decode functions
// read every field and check once.
type decoder struct {
	t   Type
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = errorf(CodeMalformed, "%s: "+format, append([]any{d.t}, args...)...)
	}
}

func (d *decoder) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("%s needs %d bytes, %d left", field, n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8(field string) uint8 {
	if p := d.take(1, field); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(field string) uint16 {
	if p := d.take(2, field); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if p := d.take(4, field); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(field string) uint64 {
	if p := d.take(8, field); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// bytesN reads a length-prefixed field whose prefix has width bytes and whose
// length may not exceed max.
func (d *decoder) bytesN(width int, max int, field string) []byte {
	var n int
	switch width {
	case 1:
		n = int(d.u8(field))
	case 2:
		n = int(d.u16(field))
	case 4:
		n = int(d.u32(field))
	}
	if d.err != nil {
		return nil
	}
	if n > max {
		d.fail("%s declares %d bytes, limit %d", field, n, max)
		return nil
	}
	return d.take(n, field)
}

func (d *decoder) str8(field string, max int) string   { return string(d.bytesN(1, max, field)) }
func (d *decoder) str16(field string, max int) string  { return string(d.bytesN(2, max, field)) }
func (d *decoder) str32(field string, max int) string  { return string(d.bytesN(4, max, field)) }
func (d *decoder) bytes8(field string, max int) []byte { return cloneBytes(d.bytesN(1, max, field)) }

// rest takes all remaining bytes as one field of min to max bytes: the
// data that ends a voice or video payload.
func (d *decoder) rest(field string, min, max int) []byte {
	if d.err != nil {
		return nil
	}
	if n := len(d.b); n < min || n > max {
		d.fail("%s is %d bytes, want %d to %d", field, n, min, max)
		return nil
	}
	return d.take(len(d.b), field)
}

// done reports the first error, or an error if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errorf(CodeMalformed, "%s: %d trailing bytes", d.t, len(d.b))
	}
	return d.err
}

// TruncateUTF8 shortens s to at most n bytes without splitting a character.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func cloneBytes(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// errLen is a convenience for validate methods.
func errLen(t Type, field string, n, max int) error {
	if n > max {
		return fmt.Errorf("protocol: encoding %s: %w", t, errorf(CodeBadRequest, "%s is %d bytes, limit %d", field, n, max))
	}
	return nil
}
