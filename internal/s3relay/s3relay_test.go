package s3relay_test

// Tests of the S3 relay against devgate-lab: its S3 (gofakes3 behind SigV4),
// a real tunnel and sshd, curl on the "instance" (this machine).

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
	"github.com/devgate/devgate/internal/lab/labtest"
	"github.com/devgate/devgate/internal/s3relay"
	"github.com/devgate/devgate/internal/sshconn"
	"github.com/devgate/devgate/internal/sshkey"
	"github.com/devgate/devgate/internal/tunnel"
)

type fixture struct {
	l   *lab.Lab
	s3  *labs3.Service
	c   *sshconn.Client
	dir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s3 := labs3.New("relay")
	l := labtest.Start(t, lab.Options{Services: []lab.Service{s3}})
	dir := t.TempDir()
	k, err := sshkey.Ensure(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sshkey.LoadSigner(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := l.Instance("gpu1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, _, err := sshconn.DialN(ctx, l.AWSConfig(),
		tunnel.Options{Target: in.ID, Port: 22, User: in.User, PublicKey: k.Public.AuthorizedKey, Timeout: time.Minute},
		sshconn.Config{User: in.User, Signer: signer, KnownHosts: filepath.Join(dir, "known_hosts")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs[0].Close() })
	return &fixture{l: l, s3: s3, c: cs[0], dir: dir}
}

func randFile(t *testing.T, n int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{3}), n); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, _ := os.ReadFile(a)
	y, err := os.ReadFile(b)
	if err != nil || sha256.Sum256(x) != sha256.Sum256(y) {
		t.Fatalf("%s and %s differ (%v)", a, b, err)
	}
}

// stopAfter is a Progress that cancels the copy once n bytes were counted
// (the relay reports a file at its own size: the first leg, instance ↔ S3,
// is its first half, the second leg its second half; see twoLegs).
type stopAfter struct {
	n      int64
	got    atomic.Int64
	cancel context.CancelFunc
}

func (p *stopAfter) Total(int, int64, int64)        {}
func (p *stopAfter) FileStart(string, int64, int64) {}
func (p *stopAfter) FileDone(string)                {}
func (p *stopAfter) Add(_ string, n int64) {
	if p.got.Add(n) >= p.n {
		p.cancel()
	}
}

// TestResume: a copy stopped in its first leg (the multipart upload) and one
// stopped in its second (the ranged downloads), both ways: the same copy
// again asks S3 which parts it has and sends the rest, fetches only the
// missing ranges, and the result is byte-exact, the object deleted, the
// journal gone.
func TestResume(t *testing.T) {
	f := newFixture(t)
	const size, part = 12 << 20, 1 << 20
	src := randFile(t, size)
	for _, c := range []struct {
		name   string
		up     bool
		stopAt int64 // progress bytes, of size (the first leg is the first half)
		gone   bool  // the multipart upload is aborted before the rerun (expired, or a lifecycle rule)
	}{{"download-first-leg", false, size / 4, false}, {"download-second-leg", false, size/2 + size/4, false},
		{"upload-first-leg", true, size / 4, false}, {"upload-second-leg", true, size/2 + size/4, false},
		{"upload-first-leg-upload-gone", true, size / 4, true}} {
		t.Run(c.name, func(t *testing.T) {
			journals := t.TempDir()
			dst := filepath.Join(t.TempDir(), "out.bin")
			run := func(ctx context.Context, p *stopAfter) (s3relayStats, error) {
				o := s3relay.Options{Bucket: "relay", PartSize: part, Parallel: 2, JournalDir: journals}
				if p != nil {
					o.Progress = p
				}
				if c.up {
					st, err := s3relay.Upload(ctx, f.l.AWSConfig(), f.c, src, dst, o)
					return s3relayStats{st.Moved, st.Resumed}, err
				}
				st, err := s3relay.Download(ctx, f.l.AWSConfig(), f.c, src, dst, o)
				return s3relayStats{st.Moved, st.Resumed}, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stopCtx, stop := context.WithCancel(ctx)
			if _, err := run(stopCtx, &stopAfter{n: c.stopAt, cancel: stop}); err == nil {
				t.Fatal("the stopped copy succeeded")
			}
			stop()
			if js, _ := filepath.Glob(filepath.Join(journals, "relay-*.json")); len(js) != 1 {
				t.Fatalf("journals after the stop: %v", js)
			}
			if c.gone {
				// S3 answers ListParts with NoSuchUpload: the rerun starts a new upload.
				js, _ := filepath.Glob(filepath.Join(journals, "relay-*.json"))
				var j struct {
					Key      string `json:"key"`
					UploadID string `json:"upload_id"`
				}
				b, _ := os.ReadFile(js[0])
				json.Unmarshal(b, &j)
				if _, err := s3.NewFromConfig(f.l.AWSConfig(), func(o *s3.Options) { o.UsePathStyle = true }).AbortMultipartUpload(ctx,
					&s3.AbortMultipartUploadInput{Bucket: aws.String("relay"), Key: aws.String(j.Key), UploadId: aws.String(j.UploadID)}); err != nil {
					t.Fatalf("abort %+v: %v", j, err)
				}
			}
			before := f.s3.Requests()
			st, err := run(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			sameFile(t, src, dst)
			reqs := f.s3.Requests() - before
			// A fresh copy of 12 parts makes about 27 requests (create, 12 PUTs,
			// complete, 12 GETs, delete); a resumed one skips what is done.
			t.Logf("rerun: %d S3 requests, moved %d, resumed %d", reqs, st.moved, st.resumed)
			if reqs >= 2*size/part+3 && !c.gone {
				t.Fatalf("rerun made %d S3 requests: nothing was resumed", reqs)
			}
			if st.moved+st.resumed != size || c.stopAt > size/2 && st.resumed == 0 {
				t.Fatalf("rerun moved %d resumed %d of %d", st.moved, st.resumed, size)
			}
			if js, _ := filepath.Glob(filepath.Join(journals, "relay-*.json")); len(js) != 0 {
				t.Fatalf("journal left after success: %v", js)
			}
			if keys, _ := f.s3.Objects("relay"); len(keys) != 0 {
				t.Fatalf("objects left: %v", keys)
			}
			if _, err := os.Stat(dst + ".devgate-part"); !os.IsNotExist(err) {
				t.Fatalf("partial left: %v", err)
			}
		})
	}
}

type s3relayStats struct{ moved, resumed int64 }
