package sshconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultPacket is the SFTP read and write length every server accepts
// (draft-ietf-secsh-filexfer-02 §3: servers should handle 32768-byte
// packets; pkg/sftp's default).
const DefaultPacket = 32 << 10

// MaxPacket bounds the length asked of the server's limits: 256 KiB, the
// message size of OpenSSH's sftp-server (SFTP_MAX_MSG_LENGTH).
const MaxPacket = 256 << 10

// SFTPLimits is the answer to OpenSSH's limits@openssh.com extension
// request (OpenSSH PROTOCOL §4.9: four uint64s; a value of 0 means the
// server does not state that limit).
type SFTPLimits struct {
	PacketLength uint64 // longest SFTP message the server accepts, its length field included
	ReadLength   uint64 // longest read the server answers in full
	WriteLength  uint64 // longest write the server accepts
	OpenHandles  uint64
}

// Packet is the read and write length to use under l: the smaller of the
// read and write limits, leaving 1 KiB of the packet limit for the
// request's own fields, within [DefaultPacket, MaxPacket]; DefaultPacket
// when l leaves a limit unstated, and the server's own limit when it is
// below DefaultPacket.
func (l SFTPLimits) Packet() int {
	if l.ReadLength == 0 || l.WriteLength == 0 || l.PacketLength == 0 {
		return DefaultPacket
	}
	n := min(l.ReadLength, l.WriteLength)
	if l.PacketLength > 1024 {
		n = min(n, l.PacketLength-1024)
	} else {
		n = min(n, l.PacketLength)
	}
	if n < DefaultPacket {
		return int(max(n, 1))
	}
	return int(min(n, MaxPacket))
}

// SFTP packet types used here (draft-ietf-secsh-filexfer-02 §3, §8).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpStatus        = 101
	fxpExtended      = 200
	fxpExtendedReply = 201
)

const limitsExt = "limits@openssh.com"

// ErrNoLimits is a server that does not offer limits@openssh.com.
var ErrNoLimits = errors.New("sftp server does not offer " + limitsExt)

// exchangeLimits speaks SFTP version 3 on r and w: INIT, then the
// limits@openssh.com request when VERSION lists it.
func exchangeLimits(r io.Reader, w io.Writer) (SFTPLimits, error) {
	_, l, err := initLimits(r, w)
	return l, err
}

// initLimits opens an SFTP session on r and w as a client does (INIT, then
// VERSION) and asks the server's limits when VERSION lists
// limits@openssh.com. It returns the VERSION packet as it came (length
// field included) whenever it was read, also with ErrNoLimits, so that the
// same channel can go on as an SFTP session (see skipInit).
func initLimits(r io.Reader, w io.Writer) ([]byte, SFTPLimits, error) {
	if err := writePacket(w, fxpInit, binary.BigEndian.AppendUint32(nil, 3)); err != nil {
		return nil, SFTPLimits{}, err
	}
	typ, body, err := readPacket(r)
	if err != nil {
		return nil, SFTPLimits{}, err
	}
	if typ != fxpVersion {
		return nil, SFTPLimits{}, fmt.Errorf("sftp: got packet type %d, want VERSION", typ)
	}
	exts, err := parseVersion(body)
	if err != nil {
		return nil, SFTPLimits{}, err
	}
	ver := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	ver = append(append(ver, typ), body...)
	if _, ok := exts[limitsExt]; !ok {
		return ver, SFTPLimits{}, ErrNoLimits
	}
	const id = 1
	req := binary.BigEndian.AppendUint32(nil, id)
	req = appendString(req, limitsExt)
	if err := writePacket(w, fxpExtended, req); err != nil {
		return nil, SFTPLimits{}, err
	}
	typ, body, err = readPacket(r)
	if err != nil {
		return nil, SFTPLimits{}, err
	}
	l, err := parseLimitsReply(typ, body, id)
	if err != nil && !errors.Is(err, ErrNoLimits) {
		return nil, SFTPLimits{}, err
	}
	return ver, l, err
}

// skipInit is the writer of an SFTP channel whose INIT was already sent
// (initLimits): it drops the first packet written to it, which must be an
// INIT (pkg/sftp's own, written before anything else), and passes the rest
// on. Writes after the first packet come from pkg/sftp under its own lock.
type skipInit struct {
	w    io.WriteCloser
	hdr  []byte // the dropped packet's length field and type, as far as written
	left int64  // bytes of its body still to drop once hdr is whole
	done bool
}

func (s *skipInit) Write(p []byte) (int, error) {
	n := len(p)
	for !s.done && len(p) > 0 {
		if len(s.hdr) < 5 {
			k := min(5-len(s.hdr), len(p))
			s.hdr, p = append(s.hdr, p[:k]...), p[k:]
			if len(s.hdr) < 5 {
				continue
			}
			if s.hdr[4] != fxpInit {
				return 0, fmt.Errorf("sftp: first packet of type %d, want INIT", s.hdr[4])
			}
			s.left = int64(binary.BigEndian.Uint32(s.hdr)) - 1
			if s.left < 0 {
				return 0, errors.New("sftp: INIT of length 0")
			}
		}
		k := min(s.left, int64(len(p)))
		s.left, p = s.left-k, p[k:]
		s.done = s.left == 0
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (s *skipInit) Close() error { return s.w.Close() }

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func writePacket(w io.Writer, typ byte, payload []byte) error {
	p := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)))
	p = append(p, typ)
	_, err := w.Write(append(p, payload...))
	return err
}

// maxReplyPacket bounds a VERSION or EXTENDED_REPLY packet read here.
const maxReplyPacket = 64 << 10

// readPacket reads one SFTP packet: its type and the bytes after it.
func readPacket(r io.Reader) (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("sftp: reading a packet: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 1 || n > maxReplyPacket {
		return 0, nil, fmt.Errorf("sftp: packet length %d out of range", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, fmt.Errorf("sftp: reading a packet: %w", err)
	}
	return b[0], b[1:], nil
}

// parseVersion decodes the body of a VERSION packet (uint32 version, then
// extension name and data strings to its end) into the extensions it lists.
func parseVersion(b []byte) (map[string]string, error) {
	if len(b) < 4 {
		return nil, errors.New("sftp: VERSION packet too short")
	}
	b = b[4:]
	exts := map[string]string{}
	for len(b) > 0 {
		name, rest, err := parseString(b)
		if err != nil {
			return nil, fmt.Errorf("sftp: VERSION extension name: %w", err)
		}
		data, rest, err := parseString(rest)
		if err != nil {
			return nil, fmt.Errorf("sftp: VERSION extension %q data: %w", name, err)
		}
		exts[name] = data
		b = rest
	}
	return exts, nil
}

func parseString(b []byte) (string, []byte, error) {
	if len(b) < 4 {
		return "", nil, errors.New("string length cut short")
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", nil, fmt.Errorf("string of %d bytes in %d", n, len(b)-4)
	}
	return string(b[4 : 4+n]), b[4+n:], nil
}

// parseLimitsReply decodes the answer (type typ, body b) to the request id:
// an EXTENDED_REPLY with four uint64s, or a STATUS refusing it.
func parseLimitsReply(typ byte, b []byte, id uint32) (SFTPLimits, error) {
	if len(b) < 4 {
		return SFTPLimits{}, errors.New("sftp: limits reply too short")
	}
	if got := binary.BigEndian.Uint32(b); got != id {
		return SFTPLimits{}, fmt.Errorf("sftp: limits reply for request %d, want %d", got, id)
	}
	b = b[4:]
	switch typ {
	case fxpStatus:
		code := uint32(0)
		if len(b) >= 4 {
			code = binary.BigEndian.Uint32(b)
		}
		return SFTPLimits{}, fmt.Errorf("%w (status %d)", ErrNoLimits, code)
	case fxpExtendedReply:
	default:
		return SFTPLimits{}, fmt.Errorf("sftp: got packet type %d, want EXTENDED_REPLY", typ)
	}
	if len(b) < 32 {
		return SFTPLimits{}, fmt.Errorf("sftp: limits reply of %d bytes, want 32", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	return SFTPLimits{PacketLength: u(0), ReadLength: u(1), WriteLength: u(2), OpenHandles: u(3)}, nil
}
