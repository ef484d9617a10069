// Package faults holds devgate-lab's models and fault knobs: the numbers that
// make the simulated region behave like the real one (latency, the agent's
// pacing, boot and agent delays) and the faults tests and benchmarks inject
// (dropped WebSockets, reordering, throttling). It only describes them; the
// lab's services read them. README.md lists each flag, its default and where
// its number comes from.
package faults

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/devgate/devgate/internal/lab/sftpfault"
)

// Config is one lab's models and faults. The zero value is a fast lab with no
// faults and no pacing; Defaults returns what users of devgate-lab get.
type Config struct {
	// APILatency is added to every control-plane API response.
	APILatency time.Duration
	// DataDelay is the one-way delay of the data channel, applied in each
	// direction between client and agent (user space; the kernel has no netem).
	DataDelay time.Duration
	// Pacing models the real agent's pumps: read at most 1024 bytes, send one
	// message, sleep 1 ms (protocol doc §8). On by default.
	Pacing bool
	// BandwidthCap limits each session to this many bytes per second in each
	// direction (0: no cap).
	BandwidthCap int64
	// BootDelay is how long a started instance stays pending.
	BootDelay time.Duration
	// StopDelay is how long a stopping instance takes to reach stopped.
	StopDelay time.Duration
	// AgentDelay is how long after running the SSM agent reports Online.
	AgentDelay time.Duration
	// TNCWindow is how long StartSession still answers TargetNotConnected
	// after the agent reports Online (seen for tens of seconds in reports).
	TNCWindow time.Duration
	// KeyTTL is how long a key pushed with SendSSHPublicKey is accepted (60 s on AWS).
	KeyTTL time.Duration
	// DropEvery drops every client WebSocket this long after it attached (0: never).
	DropEvery time.Duration
	// DropProb drops a client WebSocket with this probability per received frame.
	DropProb float64
	// CorruptChunk flips one byte that the instance's SFTP server reads or
	// writes: "PATH-SUFFIX:BYTE-OFFSET[,…]", each once per lab (a disk or
	// memory error on the instance; package sftpfault).
	CorruptChunk string
	// ForgetOnDrop makes the service lose a session whose WebSocket a fault
	// dropped: ResumeSession then answers DoesNotExistException, as AWS does
	// for a session whose record is gone (ended or timed out while the
	// client was away).
	ForgetOnDrop bool
	// DropMode is how a drop happens: "tcp" (abrupt close, 1006) or "bye"
	// (close frame 1000 "Bye", as the real service does about hourly).
	DropMode string
	// ReorderProb holds an outgoing data message back behind its successor with this probability.
	ReorderProb float64
	// DuplicateProb sends an outgoing data message twice with this probability.
	DuplicateProb float64
	// PauseEvery sends pause_publication this often, then start_publication after PauseFor (0: never).
	PauseEvery time.Duration
	PauseFor   time.Duration
	// FreezeEvery freezes a session's data channel FreezeFor after each
	// client WebSocket attached: nothing read (no acks, no pongs), nothing
	// written, new WebSockets not served, no socket closed (0: never).
	FreezeEvery time.Duration
	FreezeFor   time.Duration
	// IdleTimeout ends a session whose client sent no stream message for
	// this long (Session Manager's idle session timeout, default 20 min; 0: never).
	IdleTimeout time.Duration
	// ThrottleRate answers this fraction of API calls with ThrottlingException
	// (JSON services) or RequestLimitExceeded (EC2).
	ThrottleRate float64
	// Seed makes the random faults repeatable (0: time-based).
	Seed int64
}

// Defaults returns the configuration devgate-lab runs with when no flag is given.
func Defaults() Config {
	return Config{
		Pacing:      true,
		BootDelay:   3 * time.Second,
		StopDelay:   2 * time.Second,
		AgentDelay:  2 * time.Second,
		KeyTTL:      60 * time.Second,
		DropMode:    "tcp",
		PauseFor:    500 * time.Millisecond,
		IdleTimeout: 20 * time.Minute,
	}
}

// RegisterFlags binds c's fields to flags on fs, with c's current values as defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.APILatency, "api-latency", c.APILatency, "added to every API response")
	fs.DurationVar(&c.DataDelay, "data-delay", c.DataDelay, "one-way data-channel delay, each direction")
	fs.BoolVar(&c.Pacing, "pacing", c.Pacing, "model the real agent's 1024-byte reads and 1 ms sleep per message")
	fs.Int64Var(&c.BandwidthCap, "bandwidth", c.BandwidthCap, "per-session cap in bytes/s each direction (0: none)")
	fs.DurationVar(&c.BootDelay, "boot-delay", c.BootDelay, "pending → running")
	fs.DurationVar(&c.StopDelay, "stop-delay", c.StopDelay, "stopping → stopped")
	fs.DurationVar(&c.AgentDelay, "agent-delay", c.AgentDelay, "running → SSM agent Online")
	fs.DurationVar(&c.TNCWindow, "tnc-window", c.TNCWindow, "TargetNotConnected window after the agent is Online")
	fs.DurationVar(&c.KeyTTL, "key-ttl", c.KeyTTL, "validity of keys pushed with SendSSHPublicKey")
	fs.DurationVar(&c.DropEvery, "drop-every", c.DropEvery, "drop each client WebSocket after this long (0: never)")
	fs.Float64Var(&c.DropProb, "drop-prob", c.DropProb, "drop a client WebSocket with this probability per frame")
	fs.StringVar(&c.CorruptChunk, "corrupt-chunk", c.CorruptChunk, "flip the byte at OFFSET of a file ending in SUFFIX as the instance's SFTP server reads or writes it, once: SUFFIX:OFFSET[,…]")
	fs.BoolVar(&c.ForgetOnDrop, "forget-on-drop", c.ForgetOnDrop, "after a fault drop, ResumeSession answers DoesNotExistException")
	fs.StringVar(&c.DropMode, "drop-mode", c.DropMode, `how drops happen: "tcp" (abrupt) or "bye" (close 1000 "Bye")`)
	fs.Float64Var(&c.ReorderProb, "reorder-prob", c.ReorderProb, "probability of swapping an outgoing data message with its successor")
	fs.Float64Var(&c.DuplicateProb, "duplicate-prob", c.DuplicateProb, "probability of sending an outgoing data message twice")
	fs.DurationVar(&c.PauseEvery, "pause-every", c.PauseEvery, "send pause_publication this often (0: never)")
	fs.DurationVar(&c.PauseFor, "pause-for", c.PauseFor, "how long each pause lasts")
	fs.DurationVar(&c.FreezeEvery, "freeze-every", c.FreezeEvery, "freeze each session's data channel this long after a client WebSocket attached (0: never)")
	fs.DurationVar(&c.FreezeFor, "freeze-for", c.FreezeFor, "how long each freeze lasts (sockets stay open, nothing is read or written)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "end a session after this long without input from its client (0: never)")
	fs.Float64Var(&c.ThrottleRate, "throttle-rate", c.ThrottleRate, "fraction of API calls answered with a throttling error")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed for random faults (0: time-based)")
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	for name, p := range map[string]float64{"drop-prob": c.DropProb, "reorder-prob": c.ReorderProb,
		"duplicate-prob": c.DuplicateProb, "throttle-rate": c.ThrottleRate} {
		if p < 0 || p > 1 {
			return fmt.Errorf("faults: %s %v is not a probability in [0,1]", name, p)
		}
	}
	if c.DropMode != "tcp" && c.DropMode != "bye" {
		return fmt.Errorf(`faults: drop-mode %q: want "tcp" or "bye"`, c.DropMode)
	}
	if c.CorruptChunk != "" {
		if _, err := sftpfault.ParseSpecs(c.CorruptChunk); err != nil {
			return fmt.Errorf("faults: corrupt-chunk: %w", err)
		}
	}
	if c.BandwidthCap < 0 {
		return fmt.Errorf("faults: bandwidth %d is negative", c.BandwidthCap)
	}
	return nil
}
