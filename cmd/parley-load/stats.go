package main

import (
	"bufio"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// histogram records delays in buckets of about 3 % width: 32 per power of
// two of microseconds, like HdrHistogram. Recording is a few arithmetic
// operations and an atomic add, so every delivery can be recorded even at
// hundreds of thousands a second from many goroutines.
type histogram struct {
	counts [64 * histSub]atomic.Uint64
	n      atomic.Uint64
}

const histSub = 32

func newHistogram() *histogram { return new(histogram) }

func bucketOf(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - 6 // us >> exp is in [32, 64)
	return int(exp+1)*histSub + int(us>>uint(exp)) - histSub
}

// bucketValue is the lowest delay in bucket b.
func bucketValue(b int) time.Duration {
	if b < histSub {
		return time.Duration(b) * time.Microsecond
	}
	exp := b/histSub - 1
	mant := uint64(b%histSub + histSub)
	return time.Duration(mant<<uint(exp)) * time.Microsecond
}

func (h *histogram) add(d time.Duration) {
	b := min(bucketOf(d), len(h.counts)-1)
	h.counts[b].Add(1)
	h.n.Add(1)
}

// percentile returns the p-th percentile (0 < p < 100).
func (h *histogram) percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(float64(n) * p / 100))
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= want {
			return bucketValue(b)
		}
	}
	return bucketValue(len(h.counts) - 1)
}

func (h *histogram) count() uint64 { return h.n.Load() }

// cdf returns (delay, fraction of samples at or below it) for each
// non-empty bucket: the points of a distribution plot.
func (h *histogram) cdf() (delays []time.Duration, fractions []float64) {
	n := float64(h.n.Load())
	var seen uint64
	for b := range h.counts {
		c := h.counts[b].Load()
		if c == 0 {
			continue
		}
		seen += c
		delays = append(delays, bucketValue(b+1))
		fractions = append(fractions, float64(seen)/n)
	}
	return delays, fractions
}

// procStat is what /proc says about a process: CPU time used and the peak
// resident set.
type procStat struct {
	CPU     time.Duration // user + system
	PeakRSS uint64        // bytes (VmHWM)
	RSS     uint64        // bytes now (VmRSS)
	Threads int
}

// readProc reads /proc/PID/stat and /proc/PID/status.
func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 15 {
		return st, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseUint(fields[11], 10, 64)
	stime, _ := strconv.ParseUint(fields[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	st.CPU = time.Duration(utime+stime) * time.Second / hz
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.Fields(v + " 0")[0], 10, 64)
		switch k {
		case "VmHWM":
			st.PeakRSS = n << 10
		case "VmRSS":
			st.RSS = n << 10
		case "Threads":
			st.Threads = int(n)
		}
	}
	return st, nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(10 * time.Millisecond).String()
}

func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
