package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/devgate/devgate/internal/lab/sftpfault"
	"github.com/devgate/devgate/internal/shquote"
)

// sshd is one instance's real OpenSSH server on a loopback port.
//
// Keys pushed through EC2 Instance Connect are written to keysPath(user) as
// "<expiry unix seconds> <authorized key>" lines, and sshd's
// AuthorizedKeysCommand is /bin/sh (root-owned, as sshd requires of the
// command and its directories) running a short script that prints the lines
// whose expiry is still in the future. No authorized_keys file is read.
type sshd struct {
	dir        string
	port       int
	hostKeyPub string
	cmd        *exec.Cmd
	done       chan struct{}
}

// SSHDPath is where Debian's openssh-server puts sshd.
func sshdPath() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
		return "/usr/sbin/sshd", nil
	}
	return "", errors.New("sshd not found (PATH, /usr/sbin): install OpenSSH's server: sudo apt-get install -y openssh-server (Debian, Ubuntu), sudo dnf install -y openssh-server (Fedora); macOS ships it")
}

// privsepDir is the directory Debian's sshd, started as root, insists on
// ("Missing privilege separation directory"); the distribution's service unit
// creates it, which a lab's sshd never goes through.
const privsepDir = "/run/sshd"

// ensurePrivsepDir creates privsepDir when sshd will run as root on Linux.
func ensurePrivsepDir() error {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return nil
	}
	if _, err := os.Stat(privsepDir); err == nil {
		return nil
	}
	if err := os.MkdirAll(privsepDir, 0o755); err != nil {
		return fmt.Errorf("sshd needs %s: %w", privsepDir, err)
	}
	return os.Chmod(privsepDir, 0o755)
}

func (s *sshd) keysPath(user string) string { return filepath.Join(s.dir, "pushed-keys", user) }

// writeKeys rewrites user's pushed-key file atomically.
func (s *sshd) writeKeys(user string, keys []pushedKey) error {
	var b strings.Builder
	for _, k := range keys {
		if k.user == user {
			fmt.Fprintf(&b, "%d %s\n", k.expires.Unix(), k.key)
		}
	}
	p := s.keysPath(user)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func ensureHostKey(path string) (pub string, err error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return "", fmt.Errorf("host key %s: %w", path, err)
		}
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey()))), nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "devgate-lab host key")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return "", err
	}
	pubLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	return pubLine, os.WriteFile(path+".pub", []byte(pubLine+"\n"), 0o644)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sftpServerPaths are where distributions put OpenSSH's sftp-server.
var sftpServerPaths = []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server"}

// faultSubsystem is the sftp Subsystem command of the corrupt-chunk fault:
// sftpfault's relay (devgate-lab-sftp-fault on PATH, else devgate-lab's own
// subcommand of that name) in front of OpenSSH's sftp-server.
func faultSubsystem(specs, onceDir string) (string, error) {
	var server string
	for _, p := range sftpServerPaths {
		if _, err := os.Stat(p); err == nil {
			server = p
			break
		}
	}
	if server == "" {
		return "", fmt.Errorf("the corrupt-chunk fault needs OpenSSH's sftp-server (looked in %v)", sftpServerPaths)
	}
	argv := []string{sftpfault.Command}
	if p, err := exec.LookPath(sftpfault.Command); err == nil {
		argv = []string{p}
	} else if exe, err := os.Executable(); err == nil {
		argv = []string{exe, sftpfault.Command}
	} else {
		return "", fmt.Errorf("the corrupt-chunk fault needs %s on PATH: %w", sftpfault.Command, err)
	}
	return shquote.Join(append(argv, specs, onceDir, server)...), nil
}

// startSSHD writes dir/sshd_config and starts sshd for user on a free
// loopback port; subsystem is the sftp Subsystem command ("" for internal-sftp).
func startSSHD(ctx context.Context, dir, user string, port int, subsystem string) (*sshd, error) {
	if subsystem == "" {
		subsystem = "internal-sftp"
	}
	bin, err := sshdPath()
	if err != nil {
		return nil, err
	}
	if err := ensurePrivsepDir(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	me, err := osuser.Current()
	if err != nil {
		return nil, err
	}
	labUser := me.Username
	s := &sshd{dir: dir}
	hk := filepath.Join(dir, "ssh_host_ed25519_key")
	if s.hostKeyPub, err = ensureHostKey(hk); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "pushed-keys"), 0o700); err != nil {
		return nil, err
	}
	script := `now=$(date +%%s); while read -r exp key; do if [ "$exp" -gt "$now" ]; then echo "$key"; fi; done < "` +
		filepath.Join(dir, "pushed-keys") + `/%u" 2>/dev/null; exit 0`
	for attempt := 0; attempt < 5; attempt++ {
		p := port
		if p == 0 {
			if p, err = freePort(); err != nil {
				return nil, err
			}
		}
		cfg := strings.Join([]string{
			"Port " + strconv.Itoa(p),
			"ListenAddress 127.0.0.1",
			"HostKey " + hk,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile none",
			"AuthorizedKeysCommand /bin/sh -c '" + script + "'",
			// The command reads the lab's 0700 state dir: it runs as the lab's
			// own user, whatever OS user the instance logs in as.
			"AuthorizedKeysCommandUser " + labUser,
			"AllowUsers " + user,
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"PermitRootLogin prohibit-password",
			"UsePAM no",
			"PrintMotd no",
			"MaxStartups 200:30:400",
			"MaxSessions 100",
			"Subsystem sftp " + subsystem,
			"LogLevel VERBOSE",
			"",
		}, "\n")
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		logf, err := os.OpenFile(filepath.Join(dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "-D", "-e", "-f", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start sshd: %w", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(done) }()
		// Ready when the port answers with an SSH banner.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-done:
				goto retry
			case <-ctx.Done():
				cmd.Process.Kill()
				return nil, ctx.Err()
			default:
			}
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second); err == nil {
				c.Close()
				s.port, s.cmd, s.done = p, cmd, done
				return s, nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-done
	retry:
		if port != 0 {
			break
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
	return nil, fmt.Errorf("sshd did not start; its log:\n%s", tail(string(log), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (s *sshd) stop() {
	if s == nil || s.cmd == nil {
		return
	}
	// The process group holds sshd and its per-connection children.
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
}

// children counts the processes whose parent is this sshd: one per open
// connection ("sshd: user [priv]" or, without privilege separation,
// "sshd: user@notty"). It reads /proc (Linux).
func (s *sshd) children() (int, error) {
	if s == nil || s.cmd == nil {
		return 0, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(s.cmd.Process.Pid) {
			n++
		}
	}
	return n, nil
}
