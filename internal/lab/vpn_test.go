package lab_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// TestVPNModel: the private address refuses until the VPN is up, then
// relays port 22 to the instance's sshd (its banner arrives); dropping the
// VPN closes the relayed connection; silence leaves a SYN unanswered.
func TestVPNModel(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	gpu1, _ := l.Instance("gpu1")
	if !strings.HasPrefix(gpu1.PrivateIP, "127.10.") {
		t.Fatalf("private address %q is not in 127.10/16", gpu1.PrivateIP)
	}
	addr := net.JoinHostPort(gpu1.PrivateIP, "22")
	if _, err := net.DialTimeout("tcp", addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("before the VPN: dial %s: %v, want connection refused", addr, err)
	}
	if err := l.SetVPN(lab.VPNUp); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("VPN up: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Fatalf("banner %q %v", banner, err)
	}
	if st := l.VPN(); st.State != lab.VPNUp || st.Open != 1 || st.Relayed != 1 {
		t.Fatalf("status %+v", st)
	}
	// Dropped mid-session: the relayed connection ends.
	if err := l.SetVPN(lab.VPNSilence); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the relayed connection stayed open after the VPN dropped")
		}
	}
	_, err = net.DialTimeout("tcp", addr, 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silence: dial %s: %v, want a timeout", addr, err)
	}
	if err := l.SetVPN(lab.VPNRefuse); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refuse: dial %s: %v", addr, err)
	}
	// The admin endpoint wants its token.
	req, _ := http.NewRequest(http.MethodPost, l.Endpoint()+"/_lab/vpn?state=up", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || l.VPN().State != lab.VPNRefuse {
		t.Fatalf("admin call without token: %d, VPN %s", resp.StatusCode, l.VPN().State)
	}
	req.Header.Set(lab.AdminHeader, l.AdminToken())
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || l.VPN().State != lab.VPNUp {
		t.Fatalf("admin call: %d, VPN %s", resp.StatusCode, l.VPN().State)
	}
}

// TestVPNLaunchedInstance: an instance launched while the VPN is up gets a
// 127.10.x.y address that relays to its sshd at once (no VPN state change
// needed); one launched while it is silent does not answer; refusal covers both.
func TestVPNLaunchedInstance(t *testing.T) {
	l := labtest.Start(t, lab.Options{})
	if err := l.SetVPN(lab.VPNUp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up, err := l.Launch(ctx, lab.InstanceSpec{Name: "late-up"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(up.PrivateIP, "127.10.") {
		t.Fatalf("launched instance's private address %q is not in 127.10/16", up.PrivateIP)
	}
	upAddr := net.JoinHostPort(up.PrivateIP, "22")
	c, err := net.DialTimeout("tcp", upAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("VPN up, instance launched after: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Fatalf("banner %q %v", banner, err)
	}
	if st := l.VPN(); !slices.Contains(st.Addresses, upAddr) || st.Relayed != 1 {
		t.Fatalf("status %+v", st)
	}

	if err := l.SetVPN(lab.VPNSilence); err != nil {
		t.Fatal(err)
	}
	quiet, err := l.Launch(ctx, lab.InstanceSpec{Name: "late-silent"})
	if err != nil {
		t.Fatal(err)
	}
	quietAddr := net.JoinHostPort(quiet.PrivateIP, "22")
	_, err = net.DialTimeout("tcp", quietAddr, 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silence, instance launched after: dial %s: %v, want a timeout", quietAddr, err)
	}

	if err := l.SetVPN(lab.VPNRefuse); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{upAddr, quietAddr} {
		if _, err := net.DialTimeout("tcp", a, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("refuse: dial %s: %v", a, err)
		}
	}
}

// TestVPNStopClosesRelayed: stopping an instance (StopInstances) while the
// VPN is up ends the connections relayed to it, as EC2 stopping the OS
// would; another instance's connection stays open.
func TestVPNStopClosesRelayed(t *testing.T) {
	l := labtest.Start(t, lab.Options{Instances: []lab.InstanceSpec{
		{Name: "gpu1", Type: "g5.xlarge", State: "running"},
		{Name: "gpu2", Type: "g5.xlarge", State: "running"},
	}})
	if err := l.SetVPN(lab.VPNUp); err != nil {
		t.Fatal(err)
	}
	dial := func(name string) (net.Conn, *bufio.Reader) {
		t.Helper()
		inst, _ := l.Instance(name)
		c, err := net.DialTimeout("tcp", net.JoinHostPort(inst.PrivateIP, "22"), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if banner, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
			t.Fatalf("%s: banner %q %v", name, banner, err)
		}
		return c, r
	}
	c1, r1 := dial("gpu1")
	c2, r2 := dial("gpu2")
	if st := l.VPN(); st.Open != 2 {
		t.Fatalf("status %+v, want 2 open", st)
	}
	if err := l.StopInstance("gpu1"); err != nil {
		t.Fatal(err)
	}
	c1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r1.ReadByte(); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("gpu1's relayed connection after StopInstances: read %v, want it closed", err)
	}
	c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := r2.ReadByte(); !isTimeout(err) {
		t.Fatalf("gpu2's relayed connection after gpu1 stopped: read %v, want it still open", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.VPN().Open != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, want 1 open", l.VPN())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
