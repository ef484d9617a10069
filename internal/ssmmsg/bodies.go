package ssmmsg

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
)

// OpenDataChannelInput is the JSON text frame a client sends first on every
// WebSocket connection (§2.2). Field order matches the official plugin.
type OpenDataChannelInput struct {
	MessageSchemaVersion string
	RequestId            string
	TokenValue           string
	ClientId             string
	ClientVersion        string `json:",omitempty"`
}

// Session types a HandshakeRequest may carry (§4.2).
const (
	SessionTypeStandardStream         = "Standard_Stream"
	SessionTypeInteractiveCommands    = "InteractiveCommands"
	SessionTypeNonInteractiveCommands = "NonInteractiveCommands"
	SessionTypePort                   = "Port"
)

// Client action types and statuses (§4.2).
const (
	ActionSessionType   = "SessionType"
	ActionKMSEncryption = "KMSEncryption"

	ActionSuccess     = 1
	ActionFailed      = 2
	ActionUnsupported = 3
)

// HandshakeRequest is the agent's first message (PayloadHandshakeRequest).
type HandshakeRequest struct {
	AgentVersion           string
	RequestedClientActions []RequestedClientAction
}

// RequestedClientAction is one action the agent asks the client to perform.
type RequestedClientAction struct {
	ActionType       string
	ActionParameters json.RawMessage
}

// SessionTypeRequest is the ActionParameters of a SessionType action.
type SessionTypeRequest struct {
	SessionType string
	Properties  map[string]any
}

// HandshakeResponse is the client's answer (PayloadHandshakeResponse).
type HandshakeResponse struct {
	ClientVersion          string
	ProcessedClientActions []ProcessedClientAction
	Errors                 []string
}

// ProcessedClientAction reports the outcome of one requested action.
type ProcessedClientAction struct {
	ActionType   string
	ActionStatus int
	ActionResult json.RawMessage
	Error        string
}

// HandshakeComplete ends the handshake (PayloadHandshakeComplete).
// HandshakeTimeToComplete is in nanoseconds.
type HandshakeComplete struct {
	HandshakeTimeToComplete int64
	CustomerMessage         string
}

// AcknowledgeContent is the payload of an acknowledge message (§5.3).
type AcknowledgeContent struct {
	AcknowledgedMessageType           string
	AcknowledgedMessageId             string
	AcknowledgedMessageSequenceNumber int64
	IsSequentialMessage               bool
}

// ChannelClosedContent is the payload of a channel_closed message (§7.1).
// CreatedDate is a decimal string of epoch milliseconds in the plugin's tests;
// decoding accepts a number as well.
type ChannelClosedContent struct {
	MessageId     string
	CreatedDate   string
	DestinationId string
	SessionId     string
	MessageType   string
	SchemaVersion int
	Output        string
}

// UnmarshalJSON accepts CreatedDate as a string or a number.
func (c *ChannelClosedContent) UnmarshalJSON(b []byte) error {
	type plain ChannelClosedContent
	var aux struct {
		plain
		CreatedDate json.RawMessage
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*c = ChannelClosedContent(aux.plain)
	c.CreatedDate = ""
	if len(aux.CreatedDate) > 0 && string(aux.CreatedDate) != "null" {
		var s string
		if err := json.Unmarshal(aux.CreatedDate, &s); err == nil {
			c.CreatedDate = s
		} else {
			var n json.Number
			if err := json.Unmarshal(aux.CreatedDate, &n); err != nil {
				return fmt.Errorf("ssmmsg: channel_closed CreatedDate: %w", err)
			}
			c.CreatedDate = n.String()
		}
	}
	return nil
}

// NewAck returns the acknowledge message for m: seq 0, Flags 3, no payload type.
func NewAck(m *Message, createdDate uint64, id UUID) (*Message, error) {
	body := AppendAckPayload(nil, m)
	return &Message{
		Type:        Acknowledge,
		CreatedDate: createdDate,
		Flags:       FlagsAck,
		MessageID:   id,
		PayloadType: PayloadNone,
		Payload:     body,
	}, nil
}

// AppendAckPayload appends the JSON payload of the acknowledge of m (§5.3):
// byte for byte what encoding/json makes of the AcknowledgeContent with
// m's type, id and sequence number and IsSequentialMessage true, without
// reflection or allocation (the ack is on every message's path).
func AppendAckPayload(dst []byte, m *Message) []byte {
	if !plainJSON(m.Type) {
		body, _ := json.Marshal(AcknowledgeContent{AcknowledgedMessageType: m.Type,
			AcknowledgedMessageId: m.MessageID.String(), AcknowledgedMessageSequenceNumber: m.SequenceNumber,
			IsSequentialMessage: true})
		return append(dst, body...)
	}
	dst = append(dst, `{"AcknowledgedMessageType":"`...)
	dst = append(dst, m.Type...)
	dst = append(dst, `","AcknowledgedMessageId":"`...)
	dst = m.MessageID.appendString(dst)
	dst = append(dst, `","AcknowledgedMessageSequenceNumber":`...)
	dst = strconv.AppendInt(dst, m.SequenceNumber, 10)
	return append(dst, `,"IsSequentialMessage":true}`...)
}

// plainJSON reports whether encoding/json writes s inside quotes unchanged
// (no quote, backslash, control byte, non-ASCII, or the HTML characters it escapes).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// AppendAck appends the frame of the acknowledge of m (NewAck, encoded) to
// dst: no allocation beyond dst's growth.
func AppendAck(dst []byte, m *Message, createdDate uint64, id UUID) []byte {
	var body [192]byte
	a := Message{Type: Acknowledge, CreatedDate: createdDate, Flags: FlagsAck, MessageID: id,
		PayloadType: PayloadNone, Payload: AppendAckPayload(body[:0], m)}
	return a.appendFrame(dst) // a valid type and a small payload: nothing to validate
}

// ParseAck decodes an acknowledge message's payload.
func ParseAck(m *Message) (AcknowledgeContent, error) {
	var a AcknowledgeContent
	if m.Type != Acknowledge {
		return a, fmt.Errorf("%w: %s is not an acknowledge", ErrMalformed, m.Type)
	}
	if err := json.Unmarshal(m.Payload, &a); err != nil {
		return a, fmt.Errorf("%w: acknowledge body: %v", ErrMalformed, err)
	}
	return a, nil
}

// ParseChannelClosed decodes a channel_closed message's payload.
func ParseChannelClosed(m *Message) (ChannelClosedContent, error) {
	var c ChannelClosedContent
	if err := json.Unmarshal(m.Payload, &c); err != nil {
		return c, fmt.Errorf("%w: channel_closed body: %v", ErrMalformed, err)
	}
	return c, nil
}

// NewChannelClosedPayload builds a channel_closed body.
func NewChannelClosedPayload(id UUID, createdDate uint64, sessionID, destination, output string) ([]byte, error) {
	return json.Marshal(ChannelClosedContent{
		MessageId:     id.String(),
		CreatedDate:   strconv.FormatUint(createdDate, 10),
		DestinationId: destination,
		SessionId:     sessionID,
		MessageType:   ChannelClosed,
		SchemaVersion: 1,
		Output:        output,
	})
}

// FlagPayload encodes a flag as its 4-byte big-endian payload.
func FlagPayload(f Flag) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(f))
	return b[:]
}

// ParseFlag decodes a PayloadFlag payload.
func ParseFlag(p []byte) (Flag, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: flag payload of %d bytes, want 4", ErrMalformed, len(p))
	}
	return Flag(binary.BigEndian.Uint32(p)), nil
}

// ParseHandshakeRequest decodes a HandshakeRequest payload and, when present,
// its SessionType action.
func ParseHandshakeRequest(p []byte) (HandshakeRequest, *SessionTypeRequest, error) {
	var hr HandshakeRequest
	if err := json.Unmarshal(p, &hr); err != nil {
		return hr, nil, fmt.Errorf("%w: handshake request: %v", ErrMalformed, err)
	}
	for _, a := range hr.RequestedClientActions {
		if a.ActionType == ActionSessionType {
			var st SessionTypeRequest
			if err := json.Unmarshal(a.ActionParameters, &st); err != nil {
				return hr, nil, fmt.Errorf("%w: SessionType parameters: %v", ErrMalformed, err)
			}
			return hr, &st, nil
		}
	}
	return hr, nil, nil
}

// Property returns a handshake property as a string ("" when absent).
// Documents carry strings; numbers are formatted without exponent.
func (s *SessionTypeRequest) Property(key string) string {
	switch v := s.Properties[key].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// CompareVersions compares dotted numeric versions the way both official
// endpoints do (§6.1): component by component, and only when both have the
// same number of components. ok is false when they cannot be compared, which
// the official client treats as "feature not supported".
func CompareVersions(a, b string) (cmp int, ok bool) {
	pa, pb := splitVersion(a), splitVersion(b)
	if pa == nil || pb == nil || len(pa) != len(pb) {
		return 0, false
	}
	for i := range pa {
		switch {
		case pa[i] < pb[i]:
			return -1, true
		case pa[i] > pb[i]:
			return 1, true
		}
	}
	return 0, true
}

func splitVersion(v string) []int {
	if v == "" {
		return nil
	}
	var out []int
	start := 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '.' {
			n, err := strconv.Atoi(v[start:i])
			if err != nil {
				return nil
			}
			out = append(out, n)
			start = i + 1
		}
	}
	return out
}

// CompareVersionsPadded compares dotted numeric versions, treating missing
// components as 0, the way the agent's versionutil does. ok is false when
// either is empty or not numeric.
func CompareVersionsPadded(a, b string) (cmp int, ok bool) {
	pa, pb := splitVersion(a), splitVersion(b)
	if pa == nil || pb == nil {
		return 0, false
	}
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
	}
	return 0, true
}

// Version thresholds of §6.1/§6.2.
const (
	muxMinClientVersion        = "1.1.70"     // agent: mux when ClientVersion ≥ this
	muxMinAgentVersionExcl     = "3.0.196.0"  // client: mux when AgentVersion > this
	agentKeepaliveOffAboveCli  = "1.2.331.0"  // agent: smux keepalive off when ClientVersion > this
	clientKeepaliveOffAboveAgt = "3.1.1511.0" // client: smux keepalive off when AgentVersion > this
	basicTerminateFlagAboveAgt = "2.3.722.0"  // client: basic mode sends the TerminateSession flag when AgentVersion > this
)

// AgentChoosesMux reports whether an agent picks the smux session for a
// LocalPortForwarding session with this ClientVersion.
func AgentChoosesMux(clientVersion string) bool {
	c, ok := CompareVersionsPadded(clientVersion, muxMinClientVersion)
	return ok && c >= 0
}

// AgentHasMux reports whether an agent of this version has the smux port
// session at all: agents up to 3.0.196.0 predate it and always run basic
// mode, whatever the client's version (the plugin's threshold, §6.1). The
// comparison pads, as the agent's own versionutil does, so a non-4-part
// AgentVersion such as "3.3" still has mux (the trap of §6.1).
func AgentHasMux(agentVersion string) bool {
	c, ok := CompareVersionsPadded(agentVersion, muxMinAgentVersionExcl)
	return ok && c > 0
}

// ClientChoosesMux reports whether a client picks smux for a
// LocalPortForwarding session with this AgentVersion (strict 4-part compare).
func ClientChoosesMux(agentVersion string) bool {
	c, ok := CompareVersions(agentVersion, muxMinAgentVersionExcl)
	return ok && c > 0
}

// AgentSmuxKeepalive reports whether the agent keeps smux keepalive on for
// this ClientVersion.
func AgentSmuxKeepalive(clientVersion string) bool {
	c, ok := CompareVersionsPadded(clientVersion, agentKeepaliveOffAboveCli)
	return !(ok && c > 0)
}

// ClientSmuxKeepalive reports whether a client keeps smux keepalive on for
// this AgentVersion.
func ClientSmuxKeepalive(agentVersion string) bool {
	c, ok := CompareVersions(agentVersion, clientKeepaliveOffAboveAgt)
	return !(ok && c > 0)
}

// ClientSendsTerminateFlag reports whether a basic-mode client ends the session
// with Flag TerminateSession (true) or with the TerminateSession API (false).
func ClientSendsTerminateFlag(agentVersion string) bool {
	c, ok := CompareVersions(agentVersion, basicTerminateFlagAboveAgt)
	return ok && c > 0
}
