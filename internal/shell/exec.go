package shell

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/ssmmsg"
	"github.com/devgate/devgate/internal/tunnel"
)

// ExecDocument is the session document devgate exec runs: NonInteractiveCommands
// with linux.separateOutputStream, so that the agent sends stdout as Output,
// stderr as StdErr and the exit status as ExitCode "EXIT_CODE: n"
// (amazon-ssm-agent agent/session/shell/shell.go
// processCommandsWithOutputStreamSeparate, sendExitCode; protocol doc §3.2).
// No AWS-owned document sets separateOutputStream, so devgate creates this
// one in the account on first use (ssm:CreateDocument).
const ExecDocument = "devgate-Exec"

// execDocumentContent is ExecDocument's content: one parameter, command,
// run by the agent as sh -c (shell_unix.go), prefixes empty so that the
// bytes arrive untouched.
const execDocumentContent = `{
  "schemaVersion": "1.0",
  "description": "devgate exec: runs one command; stdout and stderr apart, exit status reported",
  "sessionType": "NonInteractiveCommands",
  "parameters": {
    "command": {"type": "String", "description": "The command line, run with sh -c"}
  },
  "properties": {
    "linux": {
      "commands": "{{ command }}",
      "runAsElevated": false,
      "separateOutputStream": true,
      "stdOutSeparatorPrefix": "",
      "stdErrSeparatorPrefix": ""
    }
  }
}`

// EnsureExecDocument creates ExecDocument unless a document of that name
// exists (then it is used as it is).
func EnsureExecDocument(ctx context.Context, cfg aws.Config) error {
	c := ssm.NewFromConfig(cfg)
	_, err := c.DescribeDocument(ctx, &ssm.DescribeDocumentInput{Name: aws.String(ExecDocument)})
	if err == nil {
		return nil
	}
	var inv *ssmtypes.InvalidDocument
	if !errors.As(err, &inv) {
		return awsapi.Classify(err, "ssm:DescribeDocument")
	}
	_, err = c.CreateDocument(ctx, &ssm.CreateDocumentInput{Name: aws.String(ExecDocument), Content: aws.String(execDocumentContent),
		DocumentType: ssmtypes.DocumentTypeSession, DocumentFormat: ssmtypes.DocumentFormatJson})
	var exists *ssmtypes.DocumentAlreadyExists
	if err == nil || errors.As(err, &exists) {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "AccessDeniedException" || ae.ErrorCode() == "AccessDenied") {
		return exitcode.Wrap(err, exitcode.Permission,
			"grant ssm:CreateDocument once (devgate exec creates the session document "+ExecDocument+"), or have an administrator create it",
			"cannot create the session document %s", ExecDocument)
	}
	return awsapi.Classify(err, "ssm:CreateDocument")
}

// stdinLoop is the remote end of devgate exec's stdin framing: chunks of
// "<n>\n" followed by n bytes, ended by "0\n". The agent gives the command a
// pipe it never closes (the protocol has no half-close), so the command's
// end of input has to be carried in the stream.
const stdinLoop = `while read -r n && [ "$n" -gt 0 ]; do head -c "$n"; done`

// CommandLine is the sh command line the agent runs for argv. With stdin,
// the framing loop feeds the command and ends its input; without, the
// command reads /dev/null.
func CommandLine(argv []string, withStdin bool) string {
	if withStdin {
		return stdinLoop + " | " + shquote.Join(argv...)
	}
	return shquote.Join(argv...) + " </dev/null"
}

// Exec runs argv on the target in a NonInteractiveCommands session of
// ExecDocument and returns when it ended: nil for exit status 0, an
// *exitcode.Status for another, a classified error when the session failed
// or the agent reported no status. stdout and stderr receive the command's
// streams whole; stdin, when not nil, is passed in full and then closed.
func Exec(ctx context.Context, cfg aws.Config, o tunnel.Options, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return exitcode.New(exitcode.Usage, "devgate exec <target> -- CMD [ARGS…]", "no command given")
	}
	if o.Document == "" {
		if err := EnsureExecDocument(ctx, cfg); err != nil {
			return err
		}
		o.Document = ExecDocument
	}
	o.Parameters = map[string][]string{"command": {CommandLine(argv, stdin != nil)}}
	var exit atomic.Int64
	exit.Store(-1)
	var errMu sync.Mutex
	var stderrErr error
	o.OnPayload = func(pt ssmmsg.PayloadType, p []byte) {
		switch pt {
		case ssmmsg.PayloadStdErr:
			errMu.Lock()
			if _, err := stderr.Write(p); err != nil && stderrErr == nil {
				stderrErr = err
			}
			errMu.Unlock()
		case ssmmsg.PayloadExitCode:
			if n, err := ssmmsg.ParseExitCode(p); err == nil {
				exit.Store(int64(n))
			}
		}
	}
	conn, err := tunnel.OpenShell(ctx, cfg, o)
	if err != nil {
		return err
	}
	defer conn.Close()
	sess := conn.Session()
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if _, werr := sess.Write(append([]byte(strconv.Itoa(n)+"\n"), buf[:n]...)); werr != nil {
						return
					}
				}
				if err != nil {
					_, _ = sess.Write([]byte("0\n"))
					return
				}
			}
		}()
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(stdout, sess, make([]byte, 32<<10))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			if e := sess.Err(); e != nil {
				return e
			}
			return exitcode.Wrap(err, exitcode.LocalIO, "", "writing the command's output failed")
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	n := exit.Load()
	if n < 0 {
		return exitcode.New(exitcode.Generic, "the document must set linux.separateOutputStream for devgate exec to learn the exit status",
			"the agent reported no exit status for %s", strings.Join(argv, " "))
	}
	if n != 0 {
		return &exitcode.Status{Code: int(n)}
	}
	return nil
}
