package mgs

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/devgate/devgate/internal/ssmmsg"
)

// ShellSpec describes a shell-type session (Standard_Stream,
// InteractiveCommands, NonInteractiveCommands), as the real agent's shell
// plugin runs it (amazon-ssm-agent agent/session/shell/shell.go, shell_unix.go).
type ShellSpec struct {
	// Commands is the document's linux.commands; "" for Standard_Stream,
	// which runs sh (the agent's default shell on Linux).
	Commands string
	// SeparateOutput is linux.separateOutputStream (NonInteractiveCommands):
	// stderr goes as StdErr payloads and the exit status as an ExitCode
	// payload "EXIT_CODE: n" (shell.go sendExitCode). Pty sessions never
	// report an exit status (shell.go executeCommandsWithPty).
	SeparateOutput bool
	// RunAs is the OS user the process runs as (the instance's user, or the
	// preferences' runAsDefaultUser when runAsEnabled).
	RunAs string
	// ShellProfile is the preferences' shellProfile.linux: typed into the pty
	// before the user's input, Standard_Stream only (shell.go runShellProfile).
	ShellProfile string
	// IdleTimeout ends the session after that long without client input
	// (Output or Size, §7.4); MaxDuration after that long in all. 0: off.
	IdleTimeout, MaxDuration time.Duration
	// KMSKeyID turns on the KMS handshake and stream encryption (§4.4).
	KMSKeyID string
	// Decrypt is the agent's KMS Decrypt of the client's data key, with the
	// encryption context {aws:ssm:SessionId, aws:ssm:TargetId}.
	Decrypt func(blob []byte, encryptionContext map[string]string) ([]byte, error)
	// HandshakeProperties are the document's properties, sent in the
	// handshake (only KMS sessions have one, §4.1).
	HandshakeProperties map[string]any
}

// Messages of the session limits, as channel_closed Output.
const (
	IdleTimeoutMessage = "Your session timed out due to inactivity and has been terminated."
	MaxDurationMessage = "Your session has reached the maximum session duration and has been terminated."
)

// shellPlugin runs one command in a pty (Standard_Stream, InteractiveCommands)
// or with pipes (NonInteractiveCommands).
type shellPlugin struct {
	s      *session
	spec   ShellSpec
	cmd    *exec.Cmd
	ptmx   *os.File       // pty sessions
	stdin  io.WriteCloser // NonInteractiveCommands
	once   sync.Once
	active chan struct{} // client input, for the idle timer
}

// interactive reports whether the session type runs in a pty.
func interactive(sessionType string) bool {
	return sessionType == ssmmsg.SessionTypeStandardStream || sessionType == ssmmsg.SessionTypeInteractiveCommands
}

// command builds the process: sh for Standard_Stream, sh -c commands
// otherwise, as RunAs in RunAs's home.
func (p *shellPlugin) command() (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if p.s.spec.SessionType == ssmmsg.SessionTypeStandardStream || p.spec.Commands == "" {
		cmd = exec.Command("sh")
	} else {
		cmd = exec.Command("sh", "-c", p.spec.Commands)
	}
	u, err := user.Lookup(p.spec.RunAs)
	if err != nil {
		return nil, fmt.Errorf("Unable to start command: user %s: %w", p.spec.RunAs, err)
	}
	cmd.Dir = u.HomeDir
	if st, err := os.Stat(u.HomeDir); err != nil || !st.IsDir() {
		cmd.Dir = "/"
	}
	cmd.Env = []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm-256color", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if cur, err := user.Current(); err == nil && cur.Uid != u.Uid {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return cmd, nil
}

// startShell starts the session's process and its pumps.
func (s *session) startShell() (plugin, error) {
	p := &shellPlugin{s: s, spec: *s.spec.Shell, active: make(chan struct{}, 1)}
	cmd, err := p.command()
	if err != nil {
		return nil, err
	}
	p.cmd = cmd
	if interactive(s.spec.SessionType) {
		ptmx, err := pty.StartWithAttrs(cmd, &pty.Winsize{Cols: 80, Rows: 24}, &syscall.SysProcAttr{
			Setsid: true, Setctty: true, Credential: cmd.SysProcAttr.Credential})
		if err != nil {
			return nil, fmt.Errorf("Unable to start command: %v", err)
		}
		p.ptmx = ptmx
		if s.spec.SessionType == ssmmsg.SessionTypeStandardStream && p.spec.ShellProfile != "" {
			_, _ = ptmx.Write([]byte(p.spec.ShellProfile + "\n"))
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.pumpType(ptmx, ssmmsg.PayloadOutput) // EIO once the shell and its children are gone
			_ = cmd.Wait()
			p.finished("")
		}()
	} else {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = stdin
		var outR, errR io.Reader
		var combined bytes.Buffer
		if p.spec.SeparateOutput {
			if outR, err = cmd.StdoutPipe(); err != nil {
				return nil, err
			}
			if errR, err = cmd.StderrPipe(); err != nil {
				return nil, err
			}
		} else {
			cmd.Stdout, cmd.Stderr = &combined, &combined
		}
		cmd.SysProcAttr.Setpgid = true
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("Error occurred starting the command: %v", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if p.spec.SeparateOutput {
				var pw sync.WaitGroup
				pw.Add(2)
				go func() { defer pw.Done(); _ = s.pumpType(outR, ssmmsg.PayloadOutput) }()
				go func() { defer pw.Done(); _ = s.pumpType(errR, ssmmsg.PayloadStdErr) }()
				pw.Wait()
			}
			err := cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				code = 1
			}
			if p.spec.SeparateOutput {
				_ = s.sendData(ssmmsg.PayloadExitCode, ssmmsg.ExitCodePayload(code))
			} else {
				// Without separate streams the agent sends the combined output
				// once the command ended, and no exit status (processCommandsWithExec).
				_ = s.pumpType(&combined, ssmmsg.PayloadOutput)
			}
			p.finished("")
		}()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); p.limits() }()
	return p, nil
}

// limits ends the session on idleSessionTimeout or maxSessionDuration.
func (p *shellPlugin) limits() {
	var idle, max <-chan time.Time
	var idleT *time.Timer
	if d := p.spec.IdleTimeout; d > 0 {
		idleT = time.NewTimer(d)
		defer idleT.Stop()
		idle = idleT.C
	}
	if d := p.spec.MaxDuration; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		max = t.C
	}
	for {
		select {
		case <-p.s.ctx.Done():
			return
		case <-p.active:
			if idleT != nil {
				idleT.Reset(p.spec.IdleTimeout)
			}
		case <-idle:
			p.s.log.Info("mgs: idle session timeout", "after", p.spec.IdleTimeout)
			p.kill()
			go p.s.endByAfterDrain(EndedByTimeout, IdleTimeoutMessage)
			return
		case <-max:
			p.s.log.Info("mgs: maximum session duration", "after", p.spec.MaxDuration)
			p.kill()
			go p.s.endByAfterDrain(EndedByTimeout, MaxDurationMessage)
			return
		}
	}
}

// touch records client activity for the idle timer.
func (p *shellPlugin) touch() {
	select {
	case p.active <- struct{}{}:
	default:
	}
}

// finished: the process ended; the agent flushes its output and the service
// closes the channel (shell.go: PrepareToCloseChannel, then Terminating).
func (p *shellPlugin) finished(output string) {
	p.once.Do(func() {
		if p.ptmx != nil {
			p.ptmx.Close()
		}
		go p.s.endAfterDrain(output)
	})
}

func (p *shellPlugin) input(b []byte) bool {
	p.touch()
	var err error
	if p.ptmx != nil {
		_, err = p.ptmx.Write(b)
	} else {
		_, err = p.stdin.Write(b)
	}
	if err != nil {
		p.s.log.Debug("mgs: input to a finished command dropped", "err", err)
	}
	return true
}

// resize applies a Size message to the pty.
func (p *shellPlugin) resize(sz ssmmsg.SizeData) {
	p.touch()
	if p.ptmx != nil {
		if err := pty.Setsize(p.ptmx, &pty.Winsize{Cols: uint16(sz.Cols), Rows: uint16(sz.Rows)}); err != nil {
			p.s.log.Debug("mgs: resize failed", "err", err)
		}
	}
}

func (p *shellPlugin) disconnect() {}

func (p *shellPlugin) kill() {
	if p.cmd.Process == nil {
		return
	}
	if p.ptmx != nil {
		_ = p.cmd.Process.Kill()
		p.ptmx.Close()
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	if p.stdin != nil {
		p.stdin.Close()
	}
}

// close is TerminateSession: the agent kills the process (executeCommandsWithPty, "cancelled").
func (p *shellPlugin) close() { p.kill() }

// pumpType is pump for any payload type, with the session's encryption.
func (s *session) pumpType(r io.Reader, pt ssmmsg.PayloadType) error {
	buf := make([]byte, ssmmsg.MaxPayload)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := s.sendData(pt, append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
			if s.srv.f.Pacing {
				time.Sleep(time.Millisecond)
			}
		}
		if err != nil {
			return err
		}
	}
}

// sendData sends one agent payload, encrypted in a KMS session (§4.4).
func (s *session) sendData(pt ssmmsg.PayloadType, p []byte) error {
	if c := s.streamCipher(); c != nil && ssmmsg.Encrypted(pt, true) {
		var err error
		if p, err = c.Seal(p); err != nil {
			return err
		}
	}
	_, err := s.ep.Send(s.ctx, pt, p)
	return err
}

// kmsHandshake is the agent's side of §4.4 after the HandshakeResponse:
// Decrypt the client's data key (encryption context aws:ssm:SessionId and
// aws:ssm:TargetId), then send EncChallengeRequest with 64 random bytes
// sealed with the agent's key and check that EncChallengeResponse holds the
// same bytes sealed with the client's.
func (s *session) kmsHandshake(resp ssmmsg.HandshakeResponse) error {
	var blob []byte
	for _, a := range resp.ProcessedClientActions {
		if a.ActionType != ssmmsg.ActionKMSEncryption {
			continue
		}
		var r ssmmsg.KMSEncryptionResponse
		if err := json.Unmarshal(a.ActionResult, &r); err != nil || len(r.KMSCipherTextKey) == 0 {
			return errors.New("KMSEncryption failed on client: no data key in the response")
		}
		blob = r.KMSCipherTextKey
	}
	if blob == nil {
		return errors.New("KMSEncryption was not processed by the client")
	}
	key, err := s.spec.Shell.Decrypt(blob, map[string]string{"aws:ssm:SessionId": s.spec.SessionID, "aws:ssm:TargetId": s.spec.Target})
	if err != nil {
		return fmt.Errorf("Failed to decrypt the session's data key with KMS: %v", err)
	}
	c, err := ssmmsg.NewStreamCipher(key, true, rand.Reader)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cipher = c
	s.mu.Unlock()
	challenge := make([]byte, 64)
	rand.Read(challenge)
	sealed, err := c.Seal(challenge)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(ssmmsg.EncChallenge{Challenge: sealed})
	if _, err := s.ep.Send(s.ctx, ssmmsg.PayloadEncChallengeRequest, body); err != nil {
		return err
	}
	select {
	case p := <-s.chResp:
		ch, err := ssmmsg.ParseEncChallenge(p)
		if err != nil {
			return fmt.Errorf("Encryption challenge failed: %v", err)
		}
		got, err := c.Open(ch.Challenge)
		if err != nil || !bytes.Equal(got, challenge) {
			return errors.New("Encryption challenge failed: the client's answer does not match")
		}
		return nil
	case <-time.After(handshakeTimeout):
		return errors.New("Encryption challenge timed out.")
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}
