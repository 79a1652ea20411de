//go:build race

package harness

// RaceEnabled is true when this binary was built with -race.
const RaceEnabled = true
