package ssmmsg

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// SizeData is the payload of a PayloadSize message (client→agent, shell
// sessions only): the terminal's size in character cells (§3.2; plugin
// src/message/clientmessage.go SizeData, agent contracts/model.go).
type SizeData struct {
	Cols uint32 `json:"cols"`
	Rows uint32 `json:"rows"`
}

// maxTermCells bounds what ParseSize accepts: no terminal has more than
// 65535 rows or columns (TIOCSWINSZ takes uint16).
const maxTermCells = 65535

// SizePayload encodes a PayloadSize payload: {"cols":N,"rows":N}.
func SizePayload(cols, rows int) []byte {
	b, _ := json.Marshal(SizeData{Cols: uint32(max(cols, 0)), Rows: uint32(max(rows, 0))})
	return b
}

// ParseSize decodes a PayloadSize payload. Zero or absurd sizes are errors:
// the agent would otherwise set a 0×0 window on its pty.
func ParseSize(p []byte) (SizeData, error) {
	var s SizeData
	if err := json.Unmarshal(p, &s); err != nil {
		return s, fmt.Errorf("%w: size: %v", ErrMalformed, err)
	}
	if s.Cols == 0 || s.Rows == 0 || s.Cols > maxTermCells || s.Rows > maxTermCells {
		return s, fmt.Errorf("%w: size %d×%d out of range", ErrMalformed, s.Cols, s.Rows)
	}
	return s, nil
}

// exitCodePrefix starts an ExitCode payload: the agent sends the text
// "EXIT_CODE: <n>" (amazon-ssm-agent agent/session/shell/shell.go
// sendExitCode), NonInteractiveCommands sessions with separateOutputStream only.
const exitCodePrefix = "EXIT_CODE: "

// ExitCodePayload encodes a PayloadExitCode payload.
func ExitCodePayload(code int) []byte { return []byte(exitCodePrefix + strconv.Itoa(code)) }

// ParseExitCode decodes a PayloadExitCode payload ("EXIT_CODE: 7" → 7).
func ParseExitCode(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	if !strings.HasPrefix(s, exitCodePrefix) {
		return 0, fmt.Errorf("%w: exit code payload %q", ErrMalformed, truncate(s, 40))
	}
	n, err := strconv.Atoi(strings.TrimSpace(s[len(exitCodePrefix):]))
	if err != nil || n < -1 || n > 255 {
		return 0, fmt.Errorf("%w: exit code payload %q", ErrMalformed, truncate(s, 40))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// KMSEncryptionRequest is the ActionParameters of a KMSEncryption action
// (§4.2, §4.4; agent contracts/model.go KMSEncryptionRequest).
type KMSEncryptionRequest struct {
	KMSKeyID string `json:"KMSKeyId"`
}

// KMSEncryptionResponse is the ActionResult of a processed KMSEncryption
// action: the data key as KMS returned it, encrypted (base64 in JSON), §4.4.
type KMSEncryptionResponse struct {
	KMSCipherTextKey  []byte
	KMSCipherTextHash []byte
}

// EncChallenge is the payload of EncChallengeRequest (agent→client) and
// EncChallengeResponse (client→agent): 64 random bytes, encrypted with the
// sender's key (base64 in JSON), §4.4.
type EncChallenge struct {
	Challenge []byte
}

// ParseKMSEncryptionRequest decodes a KMSEncryption action's parameters.
func ParseKMSEncryptionRequest(p []byte) (KMSEncryptionRequest, error) {
	var r KMSEncryptionRequest
	if err := json.Unmarshal(p, &r); err != nil {
		return r, fmt.Errorf("%w: KMSEncryption parameters: %v", ErrMalformed, err)
	}
	if r.KMSKeyID == "" {
		return r, fmt.Errorf("%w: KMSEncryption without a KMSKeyId", ErrMalformed)
	}
	return r, nil
}

// ParseEncChallenge decodes an EncChallengeRequest/Response payload.
func ParseEncChallenge(p []byte) (EncChallenge, error) {
	var c EncChallenge
	if err := json.Unmarshal(p, &c); err != nil {
		return c, fmt.Errorf("%w: encryption challenge: %v", ErrMalformed, err)
	}
	if len(c.Challenge) == 0 {
		return c, fmt.Errorf("%w: empty encryption challenge", ErrMalformed)
	}
	return c, nil
}

// Encrypted reports whether payloads of type pt travel encrypted in a KMS
// session, in the direction fromAgent (§4.4): client→agent Output only;
// agent→client Output, StdErr and ExitCode.
func Encrypted(pt PayloadType, fromAgent bool) bool {
	if !fromAgent {
		return pt == PayloadOutput
	}
	return pt == PayloadOutput || pt == PayloadStdErr || pt == PayloadExitCode
}
