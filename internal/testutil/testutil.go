// Package testutil scales tests for the race detector: a build with -race
// runs Go code 2-20× slower and with 5-10× the memory (Go's race detector
// docs), so fixed transfer sizes and deadlines that suit a normal build
// either time out or take minutes. Tests size their data with Size and
// their deadlines with Deadline; a normal build gets the values unchanged.
//
// It is for tests only; nothing shipped imports it.
package testutil

import "time"

// Race reports whether this binary was built with -race.
const Race = race

// DeadlineFactor multiplies deadlines under -race.
const DeadlineFactor = 10

// SizeDivisor divides transfer sizes under -race.
const SizeDivisor = 8

// Deadline returns d, or d×DeadlineFactor under -race.
func Deadline(d time.Duration) time.Duration {
	if Race {
		return d * DeadlineFactor
	}
	return d
}

// Size returns n bytes, or n/SizeDivisor (at least 1) under -race.
func Size(n int) int {
	if Race {
		return max(n/SizeDivisor, 1)
	}
	return n
}
