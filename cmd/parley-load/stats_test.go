package main

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Millisecond}, {99, 990 * time.Millisecond}, {10, 100 * time.Millisecond}} {
		got := h.percentile(tt.p)
		if d := float64(got-tt.want) / float64(tt.want); d > 0.01 || d < -0.04 {
			t.Errorf("percentile(%v) = %v, want %v within 3%%", tt.p, got, tt.want)
		}
	}
	for _, d := range []time.Duration{0, 31 * time.Microsecond, 32 * time.Microsecond, 12345 * time.Microsecond, time.Hour} {
		b := bucketOf(d)
		if v := bucketValue(b); v > d || (d < time.Hour && bucketValue(b+1) <= d) {
			t.Errorf("bucketOf(%v) = %d holding [%v, %v)", d, b, v, bucketValue(b+1))
		}
	}
}
