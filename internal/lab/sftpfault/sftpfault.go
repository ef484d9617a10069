// Package sftpfault is devgate-lab's corrupt-chunk fault: an SFTP subsystem
// for the lab's sshd that runs the real OpenSSH sftp-server and relays its
// packets, flipping one byte of the data read from (SSH_FXP_DATA) or written
// to (SSH_FXP_WRITE) a file whose path ends with a given suffix, at a given
// offset, once per lab (a marker file shared by every session's relay). It
// models a disk or memory error on the instance: devgate must catch it with
// its sha256 check and move the chunk again. The product has no such seam.
//
// It reads SFTP v3 framing only (draft-ietf-secsh-filexfer-02 §3: uint32
// length, byte type, uint32 request id); it does not change anything else.
package sftpfault

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Command is the name devgate-lab's sshd runs this relay under (a program on
// PATH, or devgate-lab's own subcommand).
const Command = "devgate-lab-sftp-fault"

// Spec is one fault: flip the byte at Offset of the first file whose path
// ends with Suffix, once.
type Spec struct {
	Suffix string
	Offset int64
}

// ParseSpecs parses "SUFFIX:OFFSET[,SUFFIX:OFFSET…]".
func ParseSpecs(s string) ([]Spec, error) {
	var out []Spec
	for _, part := range strings.Split(s, ",") {
		suf, off, ok := strings.Cut(part, ":")
		n, err := strconv.ParseInt(off, 10, 64)
		if !ok || suf == "" || err != nil || n < 0 {
			return nil, fmt.Errorf("sftpfault: %q: want PATH-SUFFIX:BYTE-OFFSET", part)
		}
		out = append(out, Spec{suf, n})
	}
	return out, nil
}

// SFTP v3 packet types (draft-ietf-secsh-filexfer-02 §3).
const (
	fxpOpen   = 3
	fxpRead   = 5
	fxpWrite  = 6
	fxpHandle = 102
	fxpData   = 103
)

// Main runs the relay: args are SPECS ONCE-DIR SFTP-SERVER [ARGS…]; stdin and
// stdout are the SSH channel. It returns the exit code.
func Main(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: "+Command+" SUFFIX:OFFSET[,…] ONCE-DIR SFTP-SERVER [ARGS…]")
		return 2
	}
	specs, err := ParseSpecs(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cmd := exec.Command(args[2], args[3:]...)
	cmd.Stderr = os.Stderr
	toServer, err := cmd.StdinPipe()
	if err != nil {
		return 1
	}
	fromServer, err := cmd.StdoutPipe()
	if err != nil {
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := &Relay{Specs: specs, OnceDir: args[1]}
	go func() {
		r.ClientToServer(bufio.NewReader(os.Stdin), toServer)
		toServer.Close()
	}()
	r.ServerToClient(bufio.NewReader(fromServer), os.Stdout)
	if err := cmd.Wait(); err != nil {
		return 1
	}
	return 0
}

// Relay holds what the two directions share: open requests, handles, reads.
type Relay struct {
	Specs   []Spec
	OnceDir string // marker files "<index>.done" make each fault happen once

	mu      sync.Mutex
	opens   map[uint32]string // request id → path
	handles map[string]string // handle → path
	reads   map[uint32]read   // request id → what it reads
}

type read struct {
	path   string
	offset int64
}

func (r *Relay) init() {
	if r.opens == nil {
		r.opens, r.handles, r.reads = map[uint32]string{}, map[string]string{}, map[uint32]read{}
	}
}

// ClientToServer copies packets from the client, noting opens and reads and
// corrupting a matching write.
func (r *Relay) ClientToServer(from io.Reader, to io.Writer) error {
	return relay(from, to, func(typ byte, p []byte) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.init()
		id, rest, ok := u32(p)
		if !ok {
			return
		}
		switch typ {
		case fxpOpen:
			if name, _, ok := str(rest); ok {
				r.opens[id] = string(name)
			}
		case fxpRead:
			h, rest, ok := str(rest)
			if ok && len(rest) >= 8 {
				r.reads[id] = read{r.handles[string(h)], int64(binary.BigEndian.Uint64(rest))}
			}
		case fxpWrite:
			h, rest, ok := str(rest)
			if ok && len(rest) >= 8 {
				off := int64(binary.BigEndian.Uint64(rest))
				if data, _, ok := str(rest[8:]); ok {
					r.corrupt(r.handles[string(h)], off, data)
				}
			}
		}
	})
}

// ServerToClient copies packets from the server, noting handles and
// corrupting matching read data.
func (r *Relay) ServerToClient(from io.Reader, to io.Writer) error {
	return relay(from, to, func(typ byte, p []byte) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.init()
		id, rest, ok := u32(p)
		if !ok {
			return
		}
		switch typ {
		case fxpHandle:
			if path, ok := r.opens[id]; ok {
				if h, _, ok := str(rest); ok {
					r.handles[string(h)] = path
				}
				delete(r.opens, id)
			}
		case fxpData:
			if rd, ok := r.reads[id]; ok {
				if data, _, ok := str(rest); ok {
					r.corrupt(rd.path, rd.offset, data)
				}
			}
			delete(r.reads, id)
		default:
			delete(r.opens, id)
			delete(r.reads, id)
		}
	})
}

// corrupt flips the byte of data (at offset off of path) a spec names, once.
func (r *Relay) corrupt(path string, off int64, data []byte) {
	for i, s := range r.Specs {
		if path == "" || !strings.HasSuffix(path, s.Suffix) || s.Offset < off || s.Offset >= off+int64(len(data)) {
			continue
		}
		f, err := os.OpenFile(fmt.Sprintf("%s/%d.done", r.OnceDir, i), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			continue // done already (by this or another session)
		}
		f.Close()
		data[s.Offset-off] ^= 0xff
	}
}

// relay copies length-prefixed packets, calling see (type, body after the
// type byte) on each before writing it; see may change body in place.
func relay(from io.Reader, to io.Writer, see func(byte, []byte)) error {
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(from, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 1<<24 {
			return fmt.Errorf("sftpfault: packet of %d bytes", n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := io.ReadFull(from, b); err != nil {
			return err
		}
		if n > 0 {
			see(b[0], b[1:])
		}
		if _, err := to.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := to.Write(b); err != nil {
			return err
		}
	}
}

func u32(b []byte) (uint32, []byte, bool) {
	if len(b) < 4 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(b), b[4:], true
}

func str(b []byte) ([]byte, []byte, bool) {
	n, rest, ok := u32(b)
	if !ok || uint64(len(rest)) < uint64(n) {
		return nil, nil, false
	}
	return rest[:n], rest[n:], true
}
