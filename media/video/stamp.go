package video

import (
	"image"
	"time"
)

// The stamp is a grid of stampRows×stampCols cells across the top of the
// picture, each pure black or pure white. Its geometry is a fixed fraction
// of the picture (a cell is 1/32 of the width and 1/24 of the height, 20×15
// pixels at 640×360), so that it reads back from a picture scaled to any
// size, and the cells are large enough to survive VP8 at low bitrates and
// downscaling to a quarter of the area.
//
// Each row is: a white and a black sync cell (the reader's reference levels),
// stampDataCols data cells (white = 1), and a black guard cell. The rows carry,
// most significant bit first:
//
//	4 bits   magic 1011
//	40 bits  frame number (modulo 2^40)
//	56 bits  capture time, microseconds since the Unix epoch (times before
//	         the epoch are stamped as 0)
//	16 bits  CRC-16/CCITT-FALSE of the frame number (5 bytes, big endian)
//	         followed by the capture time (7 bytes, big endian)
const (
	stampCols     = 32
	stampRows     = 4
	stampDataCols = stampCols - 3
	stampGridRows = 24 // the picture height is divided into this many cell rows
	stampBits     = stampRows * stampDataCols

	stampMagic     = 0b1011
	stampFrameBits = 40
	stampTimeBits  = 56

	black = 16
	white = 235
)

// stampHeight returns the height in pixels of the stamp in a picture h
// pixels high.
func stampHeight(h int) int { return stampRows * h / stampGridRows }

// cellX returns the left edge of stamp column c in a picture w wide; cellY
// the top edge of stamp row r in a picture h high.
func cellX(c, w int) int { return c * w / stampCols }
func cellY(r, h int) int { return r * h / stampGridRows }

// stampValue is what the stamp records of a capture time.
func stampValue(captured time.Time) uint64 {
	us := captured.UnixMicro()
	if us < 0 {
		return 0
	}
	return uint64(us) & (1<<stampTimeBits - 1)
}

// stampPayload returns the stampBits bits of the stamp for frame and
// captured, one bit per byte.
func stampPayload(bits *[stampBits]byte, frame uint64, captured time.Time) {
	frame &= 1<<stampFrameBits - 1
	us := stampValue(captured)
	crc := stampCRC(frame, us)
	n := 0
	put := func(v uint64, width int) {
		for i := width - 1; i >= 0; i-- {
			bits[n] = byte(v >> i & 1)
			n++
		}
	}
	put(stampMagic, 4)
	put(frame, stampFrameBits)
	put(us, stampTimeBits)
	put(uint64(crc), 16)
}

// stampCRC returns the stamp's check field for a frame number and a time
// value: the CRC of the frame number (5 bytes) and the time (7 bytes), big
// endian.
func stampCRC(frame, us uint64) uint16 {
	var msg [12]byte
	for i := range 5 {
		msg[i] = byte(frame >> (8 * (4 - i)))
	}
	for i := range 7 {
		msg[5+i] = byte(us >> (8 * (6 - i)))
	}
	return crc16(msg[:])
}

// crc16 is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xffff).
func crc16(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, x := range b {
		crc ^= uint16(x) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// drawStamp paints the stamp for frame and captured into the top rows of
// img (4:2:0, any size).
func drawStamp(img *image.YCbCr, frame uint64, captured time.Time) {
	var bits [stampBits]byte
	stampPayload(&bits, frame, captured)
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for r := range stampRows {
		var levels [stampCols]byte
		levels[0], levels[1], levels[stampCols-1] = white, black, black
		for c := range stampDataCols {
			if bits[r*stampDataCols+c] != 0 {
				levels[2+c] = white
			} else {
				levels[2+c] = black
			}
		}
		for y := cellY(r, h); y < cellY(r+1, h); y++ {
			row := yRow(img, y)
			for c := range stampCols {
				fill(row[cellX(c, w):cellX(c+1, w)], levels[c])
			}
		}
	}
	_, ch := chromaSize(img)
	for cy := 0; cy < min(ch, (stampHeight(h)+1)/2); cy++ {
		cb, cr := cRows(img, cy)
		fill(cb, 128)
		fill(cr, 128)
	}
}

// ReadStamp reads the stamp that Render put into a picture, at any size the
// picture was scaled to (down to about 160×90) and after lossy compression.
// It returns the capture time (to the microsecond) and the frame number
// (modulo 2^40). ok is false when the picture has no valid stamp: the sync
// cells lack contrast, or the magic bits or the CRC do not match.
func ReadStamp(img *image.YCbCr) (captured time.Time, frame uint64, ok bool) {
	if img == nil || img.Rect.Dx() < stampCols || img.Rect.Dy() < stampGridRows {
		return time.Time{}, 0, false
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	var bits [stampBits]byte
	for r := range stampRows {
		y0, y1 := cellY(r, h), cellY(r+1, h)
		level := func(c int) int { return cellLevel(img, cellX(c, w), cellX(c+1, w), y0, y1) }
		hi, lo := level(0), level(1)
		if hi-lo < 64 {
			return time.Time{}, 0, false
		}
		threshold := (hi + lo) / 2
		if level(stampCols-1) >= threshold {
			return time.Time{}, 0, false
		}
		for c := range stampDataCols {
			if level(2+c) >= threshold {
				bits[r*stampDataCols+c] = 1
			}
		}
	}
	n := 0
	get := func(width int) uint64 {
		var v uint64
		for range width {
			v = v<<1 | uint64(bits[n])
			n++
		}
		return v
	}
	magic := get(4)
	frame = get(stampFrameBits)
	us := get(stampTimeBits)
	crc := get(16)
	if magic != stampMagic {
		return time.Time{}, 0, false
	}
	if uint64(stampCRC(frame, us)) != crc {
		return time.Time{}, 0, false
	}
	return time.UnixMicro(int64(us)), frame, true
}

// cellLevel returns the mean luma of the middle half (in both directions)
// of the cell [x0,x1)×[y0,y1) of img.
func cellLevel(img *image.YCbCr, x0, x1, y0, y1 int) int {
	dx, dy := (x1-x0)/4, (y1-y0)/4
	x0, x1, y0, y1 = x0+dx, x1-dx, y0+dy, y1-dy
	if x1 <= x0 {
		x1 = x0 + 1
	}
	if y1 <= y0 {
		y1 = y0 + 1
	}
	sum := 0
	for y := y0; y < y1; y++ {
		for _, v := range yRow(img, y)[x0:x1] {
			sum += int(v)
		}
	}
	return sum / ((x1 - x0) * (y1 - y0))
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
