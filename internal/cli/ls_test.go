package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/awsapi"
)

// fakeRegion is a unit-test fake of the few EC2 (query/XML) and SSM (JSON)
// calls ls/start/stop make; state changes advance one step per describe.
type fakeRegion struct {
	mu        sync.Mutex
	instances []*fakeInstance
	calls     []string
}

type fakeInstance struct {
	id, name, state, agent string
}

func (f *fakeRegion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDWRONG/") {
		// What AWS answers a request signed with the wrong secret key.
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(403)
		w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error></ErrorResponse>`))
		return
	}
	w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		f.calls = append(f.calls, t)
		if t == "AWSEC2InstanceConnectService.SendSSHPublicKey" {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Write([]byte(`{"RequestId":"r","Success":true}`))
			return
		}
		if t != "AmazonSSM.DescribeInstanceInformation" {
			http.Error(w, `{"__type":"UnknownOperation"}`, 400)
			return
		}
		var list []map[string]any
		for _, i := range f.instances {
			if i.agent != "" {
				list = append(list, map[string]any{"InstanceId": i.id, "PingStatus": i.agent, "AgentVersion": "3.3.1142.0"})
			}
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(map[string]any{"InstanceInformationList": list})
		return
	}
	r.ParseForm()
	action := r.Form.Get("Action")
	f.calls = append(f.calls, action)
	want := map[string]bool{}
	for k, v := range r.Form {
		if strings.HasPrefix(k, "InstanceId.") {
			want[v[0]] = true
		}
	}
	sel := func() []*fakeInstance {
		var out []*fakeInstance
		for _, i := range f.instances {
			if len(want) == 0 || want[i.id] {
				out = append(out, i)
			}
		}
		return out
	}
	w.Header().Set("Content-Type", "text/xml")
	switch action {
	case "DescribeInstances":
		var b strings.Builder
		b.WriteString(`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationSet><item><instancesSet>`)
		for _, i := range sel() {
			fmt.Fprintf(&b, `<item><instanceId>%s</instanceId><instanceType>g5.xlarge</instanceType><privateIpAddress>10.0.0.5</privateIpAddress><launchTime>2026-01-01T00:00:00.000Z</launchTime><instanceState><code>0</code><name>%s</name></instanceState><tagSet><item><key>Name</key><value>%s</value></item></tagSet></item>`, i.id, i.state, i.name)
			switch i.state { // advance transitions after they are observed
			case "pending":
				i.state = "running"
			case "stopping":
				i.state = "stopped"
			}
		}
		b.WriteString(`</instancesSet></item></reservationSet></DescribeInstancesResponse>`)
		w.Write([]byte(b.String()))
	case "GetCallerIdentity":
		w.Write([]byte(`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/dev</Arn><UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`))
	case "StartInstances", "StopInstances":
		if r.Form.Get("DryRun") == "true" {
			w.WriteHeader(412)
			w.Write([]byte(`<Response><Errors><Error><Code>DryRunOperation</Code><Message>Request would have succeeded, but DryRun flag is set.</Message></Error></Errors></Response>`))
			return
		}
		for _, i := range sel() {
			if action == "StartInstances" {
				i.state = "pending"
			} else {
				i.state = "stopping"
			}
		}
		fmt.Fprintf(w, `<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><instancesSet/></%sResponse>`, action, action)
	default:
		w.WriteHeader(400)
		fmt.Fprintf(w, `<Response><Errors><Error><Code>InvalidAction</Code><Message>%s</Message></Error></Errors></Response>`, action)
	}
}

func startFakeRegion(t *testing.T, insts ...*fakeInstance) *fakeRegion {
	f := &fakeRegion{instances: insts}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return f
}

func TestLs(t *testing.T) {
	startFakeRegion(t,
		&fakeInstance{id: "i-0000000000000000a", name: "zz-stopped", state: "stopped"},
		&fakeInstance{id: "i-0000000000000000b", name: "gpu1", state: "running", agent: "Online"},
		&fakeInstance{id: "i-0000000000000000c", name: "aa-stopped", state: "stopped", agent: "ConnectionLost"},
	)
	code, out, errs := runCLI(t, "", "ls", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var rows []awsapi.Instance
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err, out)
	}
	if len(rows) != 3 || rows[0].Name != "gpu1" || rows[0].Agent != "Online" || rows[0].UptimeSec <= 0 ||
		rows[1].Name != "aa-stopped" || rows[1].Agent != "ConnectionLost" || rows[2].Agent != "" || rows[0].PrivateIP != "10.0.0.5" {
		t.Fatalf("rows: %+v", rows)
	}
	code, out, _ = runCLI(t, "", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "gpu1") ||
		strings.Index(lines[0], "ID") != strings.Index(lines[1], "i-0000000000000000b") {
		t.Fatalf("table:\n%s", out)
	}
}

func TestStartStopWait(t *testing.T) {
	f := startFakeRegion(t, &fakeInstance{id: "i-0000000000000000a", name: "gpu1", state: "stopped"})
	code, _, errs := runCLI(t, "", "start", "gpu1", "--wait")
	if code != 0 || !strings.Contains(errs, "running") {
		t.Fatalf("start: %d %s", code, errs)
	}
	if f.instances[0].state != "running" {
		t.Fatalf("state %s", f.instances[0].state)
	}
	code, _, errs = runCLI(t, "", "stop", "i-0000000000000000a", "--wait")
	if code != 0 || !strings.Contains(errs, "stopped") {
		t.Fatalf("stop: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", "start", "nope"); code != 12 {
		t.Fatalf("unknown target: %d %s", code, errs)
	}
	code, _, errs = runCLI(t, "", "stop", "gpu1")
	if code != 0 || !strings.Contains(errs, "already stopped") {
		t.Fatalf("stop stopped: %d %s", code, errs)
	}
}
