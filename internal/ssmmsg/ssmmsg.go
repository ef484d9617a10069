// Package ssmmsg is the Session Manager data-channel wire format: the binary
// ClientMessage frame, its message and payload types, flag values, and the
// JSON bodies of handshake, acknowledge and channel_closed messages.
//
// It is pure: no I/O, no clocks, no randomness. Callers supply CreatedDate and
// MessageId. It is shared by the client (internal/datachannel) and the lab's
// emulated service and agent, so both ends agree byte for byte.
//
// The format follows docs/ssm-session-protocol.md §3 (shared/ in the repo's
// parent): HeaderLength 116 on encode, HeaderLength honoured on decode (the
// service may send 112), MessageType right-padded with spaces (NULs and spaces
// trimmed on decode), MessageId with its 8-byte halves swapped, a SHA-256
// digest of the payload, CreatedDate in Unix milliseconds.
package ssmmsg

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Message types (§3.1).
const (
	InputStreamData  = "input_stream_data"  // client → agent
	OutputStreamData = "output_stream_data" // agent → client
	Acknowledge      = "acknowledge"        // both directions
	ChannelClosed    = "channel_closed"     // service → endpoint
	StartPublication = "start_publication"  // service → endpoint
	PausePublication = "pause_publication"  // service → endpoint
)

// PayloadType is the kind of bytes a stream message carries (§3.2).
type PayloadType uint32

// Payload types.
const (
	PayloadNone                 PayloadType = 0 // acknowledge and service messages
	PayloadOutput               PayloadType = 1
	PayloadError                PayloadType = 2
	PayloadSize                 PayloadType = 3
	PayloadParameter            PayloadType = 4
	PayloadHandshakeRequest     PayloadType = 5
	PayloadHandshakeResponse    PayloadType = 6
	PayloadHandshakeComplete    PayloadType = 7
	PayloadEncChallengeRequest  PayloadType = 8
	PayloadEncChallengeResponse PayloadType = 9
	PayloadFlag                 PayloadType = 10
	PayloadStdErr               PayloadType = 11
	PayloadExitCode             PayloadType = 12
)

var payloadTypeNames = [...]string{"None", "Output", "Error", "Size", "Parameter", "HandshakeRequest",
	"HandshakeResponse", "HandshakeComplete", "EncChallengeRequest", "EncChallengeResponse", "Flag",
	"StdErr", "ExitCode"}

func (t PayloadType) String() string {
	if int(t) < len(payloadTypeNames) {
		return payloadTypeNames[t]
	}
	return fmt.Sprintf("PayloadType(%d)", uint32(t))
}

// Flag is the 4-byte big-endian value of a PayloadFlag message (§3.2).
type Flag uint32

// Flag values.
const (
	FlagDisconnectToPort   Flag = 1 // client → agent, basic port mode: the local connection closed
	FlagTerminateSession   Flag = 2 // client → agent: end the session
	FlagConnectToPortError Flag = 3 // agent → client, mux mode: dialling the target failed
)

// Header flag bits (§3.3). Informational only: neither real endpoint reads them.
const (
	FlagsSYN uint64 = 1
	FlagsFIN uint64 = 2
	// FlagsAck is what both endpoints put in an acknowledge message's Flags field.
	FlagsAck uint64 = 3
)

// Frame layout constants (§3).
const (
	// HeaderLength is the value written by every encoder: the bytes before PayloadLength.
	HeaderLength = 116
	// HeaderLengthNoPayloadType is the short form MGS may use for channel_closed.
	HeaderLengthNoPayloadType = 112
	// HeaderSize is the full header size written by Encode (HeaderLength + the PayloadLength field).
	HeaderSize = HeaderLength + 4
	// SchemaVersion is the only schema version in use.
	SchemaVersion = 1
	// MaxPayload is the payload size both official endpoints send (StreamDataPayloadSize).
	MaxPayload = 1024

	typeLen = 32
)

// Message is one decoded ClientMessage.
type Message struct {
	Type           string // one of the message type constants, trimmed
	SchemaVersion  uint32
	CreatedDate    uint64 // Unix epoch milliseconds; must be non-zero
	SequenceNumber int64
	Flags          uint64
	MessageID      UUID
	PayloadType    PayloadType
	Payload        []byte
}

// UUID is a message id in canonical byte order (as printed), not wire order.
type UUID [16]byte

// String returns the canonical lowercase hyphenated form used in acks.
func (u UUID) String() string {
	var b [36]byte
	return string(u.appendString(b[:0]))
}

// appendString appends the String form to dst.
func (u UUID) appendString(dst []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, 36)...)
	b := dst[n:]
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return dst
}

// ParseUUID parses the canonical hyphenated form (either case).
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("ssmmsg: bad uuid %q", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("ssmmsg: bad uuid %q: %w", s, err)
	}
	return u, nil
}

// Decoding errors. Every error from Decode wraps ErrMalformed.
var (
	ErrMalformed = errors.New("ssmmsg: malformed frame")
	ErrDigest    = fmt.Errorf("%w: payload digest mismatch", ErrMalformed)
)

// EncodedLen returns the size of m's frame.
func (m *Message) EncodedLen() int { return HeaderSize + len(m.Payload) }

// Encode returns m as a frame with HeaderLength 116, a space-padded type, the
// swapped MessageId and the SHA-256 digest of the payload.
func (m *Message) Encode() ([]byte, error) {
	return m.AppendEncode(make([]byte, 0, m.EncodedLen()))
}

// AppendEncode appends m's frame to dst and returns the extended slice.
func (m *Message) AppendEncode(dst []byte) ([]byte, error) {
	if len(m.Type) == 0 || len(m.Type) > typeLen {
		return dst, fmt.Errorf("ssmmsg: message type %q must be 1..%d bytes", m.Type, typeLen)
	}
	if uint64(len(m.Payload)) > 0xFFFFFFFF {
		return dst, errors.New("ssmmsg: payload too large")
	}
	return m.appendFrame(dst), nil
}

// appendFrame is AppendEncode of a message already validated; m does not
// escape (the ack path builds its message on the stack).
func (m *Message) appendFrame(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	h := dst[start:]
	binary.BigEndian.PutUint32(h[0:4], HeaderLength)
	copy(h[4:36], m.Type)
	for i := 4 + len(m.Type); i < 36; i++ {
		h[i] = ' '
	}
	sv := m.SchemaVersion
	if sv == 0 {
		sv = SchemaVersion
	}
	binary.BigEndian.PutUint32(h[36:40], sv)
	binary.BigEndian.PutUint64(h[40:48], m.CreatedDate)
	binary.BigEndian.PutUint64(h[48:56], uint64(m.SequenceNumber))
	binary.BigEndian.PutUint64(h[56:64], m.Flags)
	copy(h[64:72], m.MessageID[8:16])
	copy(h[72:80], m.MessageID[0:8])
	sum := sha256.Sum256(m.Payload)
	copy(h[80:112], sum[:])
	binary.BigEndian.PutUint32(h[112:116], uint32(m.PayloadType))
	binary.BigEndian.PutUint32(h[116:120], uint32(len(m.Payload)))
	return append(dst, m.Payload...)
}

// Decode parses one frame. It honours HeaderLength (116, or 112 without a
// PayloadType field), trims NULs and spaces from the type, and checks the
// digest whenever the payload is non-empty. PayloadLength must match the
// bytes present. The returned Payload aliases frame.
//
// Service messages (start/pause_publication) are not validated beyond their
// header, as the official client does not validate them either.
func Decode(frame []byte) (*Message, error) {
	m := new(Message)
	if err := DecodeInto(m, frame); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeInto is Decode without the allocation of the Message.
func DecodeInto(m *Message, frame []byte) error {
	if len(frame) < 4 {
		return fmt.Errorf("%w: %d bytes, shorter than the header length field", ErrMalformed, len(frame))
	}
	hl := binary.BigEndian.Uint32(frame[0:4])
	if hl != HeaderLength && hl != HeaderLengthNoPayloadType {
		return fmt.Errorf("%w: header length %d, want %d or %d", ErrMalformed, hl, HeaderLength, HeaderLengthNoPayloadType)
	}
	if uint64(len(frame)) < uint64(hl)+4 {
		return fmt.Errorf("%w: %d bytes, header length %d needs at least %d", ErrMalformed, len(frame), hl, hl+4)
	}
	m.Type = internType(trimType(frame[4:36]))
	if m.Type == "" {
		return fmt.Errorf("%w: empty message type", ErrMalformed)
	}
	m.SchemaVersion = binary.BigEndian.Uint32(frame[36:40])
	m.CreatedDate = binary.BigEndian.Uint64(frame[40:48])
	m.SequenceNumber = int64(binary.BigEndian.Uint64(frame[48:56]))
	m.Flags = binary.BigEndian.Uint64(frame[56:64])
	copy(m.MessageID[8:16], frame[64:72])
	copy(m.MessageID[0:8], frame[72:80])
	digest := frame[80:112]
	if hl == HeaderLength {
		m.PayloadType = PayloadType(binary.BigEndian.Uint32(frame[112:116]))
	} else {
		m.PayloadType = PayloadNone
	}
	plen := binary.BigEndian.Uint32(frame[hl : hl+4])
	m.Payload = frame[hl+4:]
	if m.Type == StartPublication || m.Type == PausePublication {
		return nil
	}
	if m.CreatedDate == 0 {
		return fmt.Errorf("%w: CreatedDate is zero", ErrMalformed)
	}
	if uint64(plen) != uint64(len(m.Payload)) {
		return fmt.Errorf("%w: payload length field %d, %d bytes present", ErrMalformed, plen, len(m.Payload))
	}
	if len(m.Payload) != 0 {
		sum := sha256.Sum256(m.Payload)
		if string(sum[:]) != string(digest) {
			return ErrDigest
		}
	}
	return nil
}

func trimType(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && (b[i] == 0 || b[i] == ' ') {
		i++
	}
	for j > i && (b[j-1] == 0 || b[j-1] == ' ') {
		j--
	}
	return b[i:j]
}

// internType returns the known message types without allocating.
func internType(b []byte) string {
	switch string(b) {
	case InputStreamData:
		return InputStreamData
	case OutputStreamData:
		return OutputStreamData
	case Acknowledge:
		return Acknowledge
	case ChannelClosed:
		return ChannelClosed
	case StartPublication:
		return StartPublication
	case PausePublication:
		return PausePublication
	}
	return string(b)
}
