package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// wavHeaderSize is the size of the header WAVWriter and WriteWAV write:
// RIFF, a 16-byte fmt chunk and the data chunk header.
const wavHeaderSize = 44

// appendWAVHeader appends the header of 16-bit PCM with dataLen bytes.
func appendWAVHeader(b []byte, rate, channels int, dataLen uint32) []byte {
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, 36+dataLen)
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*channels*2))
	b = binary.LittleEndian.AppendUint16(b, uint16(channels*2))
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	return binary.LittleEndian.AppendUint32(b, dataLen)
}

func checkWriteFormat(rate, channels int) error {
	if rate < minRateWAV || rate > maxRateWAV || channels < 1 || channels > maxChannels {
		return fmt.Errorf("audio: cannot write WAV of %d Hz, %d channels", rate, channels)
	}
	return nil
}

// maxWAVData is the most sample bytes a RIFF file can hold.
const maxWAVData = math.MaxUint32 - 36

// WriteWAV writes interleaved 16-bit samples as a WAV file.
func WriteWAV(w io.Writer, pcm []int16, rate, channels int) error {
	if err := checkWriteFormat(rate, channels); err != nil {
		return err
	}
	if len(pcm)%channels != 0 {
		return fmt.Errorf("audio: %d samples are not whole frames of %d channels", len(pcm), channels)
	}
	if int64(len(pcm))*2 > maxWAVData {
		return errors.New("audio: too many samples for a WAV file")
	}
	b := appendWAVHeader(make([]byte, 0, wavHeaderSize+2*len(pcm)), rate, channels, uint32(2*len(pcm)))
	for _, v := range pcm {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	_, err := w.Write(b)
	return err
}

// WAVWriter writes 16-bit PCM to a seekable file as it comes; Close writes
// the lengths into the header. It is used from one goroutine.
type WAVWriter struct {
	w        io.WriteSeeker
	channels int
	n        int64 // sample bytes written
	buf      []byte
	err      error
}

// NewWAVWriter writes a WAV header for rate and channels to w; the samples
// follow with Write.
func NewWAVWriter(w io.WriteSeeker, rate, channels int) (*WAVWriter, error) {
	if err := checkWriteFormat(rate, channels); err != nil {
		return nil, err
	}
	if _, err := w.Write(appendWAVHeader(nil, rate, channels, 0)); err != nil {
		return nil, err
	}
	return &WAVWriter{w: w, channels: channels}, nil
}

// Write appends interleaved samples.
func (ww *WAVWriter) Write(pcm []int16) error {
	if ww.err != nil {
		return ww.err
	}
	if ww.n+2*int64(len(pcm)) > maxWAVData {
		ww.err = errors.New("audio: WAV file is full")
		return ww.err
	}
	ww.buf = ww.buf[:0]
	for _, v := range pcm {
		ww.buf = binary.LittleEndian.AppendUint16(ww.buf, uint16(v))
	}
	_, ww.err = ww.w.Write(ww.buf)
	ww.n += int64(len(ww.buf))
	return ww.err
}

// Close writes the RIFF and data lengths into the header. It does not close
// the underlying writer.
func (ww *WAVWriter) Close() error {
	if ww.err != nil {
		return ww.err
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(36+ww.n))
	if _, err := ww.w.Seek(4, io.SeekStart); err != nil {
		return err
	}
	if _, err := ww.w.Write(b[:]); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[:], uint32(ww.n))
	if _, err := ww.w.Seek(40, io.SeekStart); err != nil {
		return err
	}
	if _, err := ww.w.Write(b[:]); err != nil {
		return err
	}
	_, err := ww.w.Seek(0, io.SeekEnd)
	ww.err = errors.New("audio: WAVWriter closed")
	return err
}
