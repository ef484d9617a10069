package forward

import (
	"strconv"
	"strings"

	"github.com/devgate/devgate/internal/exitcode"
)

// Spec is one forwarded port: LocalPort on this machine to RemotePort of the
// instance, or of Host as the instance reaches it.
type Spec struct {
	LocalPort  int    // 0: any free port
	Host       string // "": the instance itself
	RemotePort int
}

// ParseSpec reads "8888" (the same port locally), "18888:8888"
// (local:remote) or "5432:db.internal:5432" (local:host:remote).
func ParseSpec(s string) (Spec, error) {
	bad := func(format string, a ...any) (Spec, error) {
		return Spec{}, exitcode.New(exitcode.Usage, "write PORT, LOCAL:REMOTE or LOCAL:HOST:REMOTE, e.g. 8888, 18888:8888, 5432:db.internal:5432",
			"port spec %q: "+format, append([]any{s}, a...)...)
	}
	parts := strings.Split(s, ":")
	var sp Spec
	var err error
	switch len(parts) {
	case 1:
		if sp.RemotePort, err = port(parts[0], false); err != nil {
			return bad("%v", err)
		}
		sp.LocalPort = sp.RemotePort
	case 2:
		if sp.LocalPort, err = port(parts[0], true); err != nil {
			return bad("local %v", err)
		}
		if sp.RemotePort, err = port(parts[1], false); err != nil {
			return bad("remote %v", err)
		}
	case 3:
		if sp.LocalPort, err = port(parts[0], true); err != nil {
			return bad("local %v", err)
		}
		sp.Host = parts[1]
		if sp.Host == "" || strings.ContainsAny(sp.Host, " /[]") {
			return bad("host %q is not a host name or address", sp.Host)
		}
		if sp.RemotePort, err = port(parts[2], false); err != nil {
			return bad("remote %v", err)
		}
	default:
		return bad("too many colons")
	}
	return sp, nil
}

func port(s string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return 0, &portError{s}
	}
	return n, nil
}

type portError struct{ s string }

func (e *portError) Error() string {
	return "port " + strconv.Quote(e.s) + " is not a port number (1-65535)"
}

// Remote is where the spec leads as seen from the instance: "8888" or "db.internal:5432".
func (s Spec) Remote() string {
	if s.Host == "" {
		return strconv.Itoa(s.RemotePort)
	}
	return s.Host + ":" + strconv.Itoa(s.RemotePort)
}
