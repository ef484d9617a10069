package datachannel

import "github.com/devgate/devgate/internal/ssmmsg"

// SendSize tells the agent the terminal's size in character cells: a
// PayloadSize message {"cols":N,"rows":N} (§3.2; shell sessions only, never
// encrypted, §4.4). The agent sets its pty's window to it.
func (s *Session) SendSize(cols, rows int) error {
	_, err := s.ep.Send(s.ctx, ssmmsg.PayloadSize, ssmmsg.SizePayload(cols, rows))
	if err != nil {
		if e := s.Err(); e != nil {
			return e
		}
	}
	return err
}
