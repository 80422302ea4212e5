//go:build race

package e2etest

// raceEnabled: the binaries under test are built with -race too.
const raceEnabled = true
