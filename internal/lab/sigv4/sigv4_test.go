package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testKey    = "AKIDEXAMPLE000000001"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	testRegion = "eu-west-3"
)

// pieces random requests are built from: reserved and unreserved characters,
// spaces, '+', '%', '~', unicode, empty segments.
var pathPieces = []string{"a", "key", "with space", "plus+sign", "tilde~", "pct%25", "ünï", "日本", "x=y", "a&b", "semi;colon", "(paren)", "star*", "dot.", "..", "", "-_.~", "!'"}
var queryPieces = []string{"a", "b", "list-type", "prefix", "x y", "p+q", "é", "=", "&", "/", "~", "", "max-keys", "uploadId", "partNumber"}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

type sent struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte
	s3           bool
	presign      bool
}

func randomRequest(r *rand.Rand) sent {
	s := sent{method: []string{"GET", "PUT", "POST", "HEAD", "DELETE"}[r.IntN(5)], query: url.Values{}, header: http.Header{},
		s3: r.IntN(2) == 0, presign: r.IntN(3) == 0}
	var segs []string
	for i := 0; i < 1+r.IntN(4); i++ {
		segs = append(segs, pick(r, pathPieces))
	}
	s.path = "/" + strings.Join(segs, "/")
	if s.s3 {
		s.path = "/devgate-lab-relay/" + strings.Join(segs, "/")
	}
	for i := 0; i < r.IntN(4); i++ {
		k := pick(r, queryPieces)
		if k == "" {
			k = "k"
		}
		s.query.Add(k, pick(r, queryPieces))
	}
	for i := 0; i < r.IntN(3); i++ {
		s.header.Set(fmt.Sprintf("X-Amz-Meta-F%d", i), "  value   with  spaces "+pick(r, queryPieces))
	}
	if r.IntN(2) == 0 {
		s.header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	if s.method == "PUT" || s.method == "POST" {
		s.body = make([]byte, r.IntN(2048))
		for i := range s.body {
			s.body[i] = byte(r.IntN(256))
		}
	}
	return s
}

// result is what the server-side Verifier said about one request.
type result struct {
	res Result
	err error
}

// server verifies every request it gets with v and reports it on ch.
func server(t *testing.T, v *Verifier) (*httptest.Server, chan result) {
	ch := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := v.Verify(r, body)
		ch <- result{res, err}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// send signs s with the SDK's signer (header form, or presigned) and sends it
// to srv; mutate may change the request after signing.
func send(t *testing.T, srv *httptest.Server, ch chan result, s sent, secret string, at time.Time, mutate func(*http.Request)) result {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = s.path
	q := url.Values{}
	for k, vs := range s.query {
		q[k] = append([]string(nil), vs...)
	}
	service := "ssm"
	if s.s3 {
		service = "s3"
	}
	if s.presign {
		q.Set("X-Amz-Expires", "300")
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(s.method, u.String(), bytes.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	payload := hashHex(s.body)
	if s.s3 {
		if s.presign {
			payload = "UNSIGNED-PAYLOAD"
		} else {
			req.Header.Set("X-Amz-Content-Sha256", payload)
		}
	}
	creds := aws.Credentials{AccessKeyID: testKey, SecretAccessKey: secret}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = s.s3 })
	if s.presign {
		signed, hdr, err := signer.PresignHTTP(context.Background(), creds, req, payload, service, testRegion, at)
		if err != nil {
			t.Fatal(err)
		}
		req, err = http.NewRequest(s.method, signed, bytes.NewReader(s.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range hdr {
			if !strings.EqualFold(k, "Host") {
				req.Header[k] = vs
			}
		}
	} else if err := signer.SignHTTP(context.Background(), creds, req, payload, service, testRegion, at); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return <-ch
}

func newVerifier(now time.Time) *Verifier {
	return &Verifier{Region: testRegion, Now: func() time.Time { return now },
		Secret: func(k string) (string, bool) { return testSecret, k == testKey }}
}

// TestVerifyAgainstSDKSigner signs random requests (both forms, S3 and other
// services, odd paths, queries and headers, bodies) with the SDK's signer and
// checks that the lab's verifier accepts each one, and refuses it with
// ErrSignature once anything signed changes.
func TestVerifyAgainstSDKSigner(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	srv, ch := server(t, newVerifier(now))
	r := rand.New(rand.NewPCG(1, 2))
	var forms [2][2]int
	for i := 0; i < 300; i++ {
		s := randomRequest(r)
		got := send(t, srv, ch, s, testSecret, now, nil)
		if got.err != nil {
			t.Fatalf("request %d (%s %s ?%s, s3=%v presigned=%v) refused: %v", i, s.method, s.path, s.query.Encode(), s.s3, s.presign, got.err)
		}
		wantSvc := map[bool]string{true: "s3", false: "ssm"}[s.s3]
		if got.res.AccessKey != testKey || got.res.Region != testRegion || got.res.Service != wantSvc || got.res.Presigned != s.presign || !got.res.Time.Equal(now) {
			t.Fatalf("request %d: result %+v", i, got.res)
		}
		forms[b2i(s.s3)][b2i(s.presign)]++

		// One signed element changed after signing: refused.
		var mutate func(*http.Request)
		switch r.IntN(3) {
		case 0:
			mutate = func(q *http.Request) { q.URL.Path += "x"; q.URL.RawPath = "" }
		case 1:
			mutate = func(q *http.Request) {
				v := q.URL.Query()
				v.Add("extra", "1")
				q.URL.RawQuery = v.Encode()
			}
		case 2:
			mutate = func(q *http.Request) { q.Method = map[string]string{"GET": "HEAD", "HEAD": "GET"}[q.Method] }
			if s.method != "GET" && s.method != "HEAD" {
				mutate = func(q *http.Request) { q.URL.Path += "x"; q.URL.RawPath = "" }
			}
		}
		if got := send(t, srv, ch, s, testSecret, now, mutate); !errors.Is(got.err, ErrSignature) {
			t.Fatalf("request %d changed after signing: %v, want ErrSignature", i, got.err)
		}
	}
	for s3 := 0; s3 < 2; s3++ {
		for pre := 0; pre < 2; pre++ {
			if forms[s3][pre] < 20 {
				t.Fatalf("only %d requests with s3=%d presigned=%d", forms[s3][pre], s3, pre)
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestVerifyFailures: each reason a request fails names its own error.
func TestVerifyFailures(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	srv, ch := server(t, newVerifier(now))
	s := sent{method: "GET", path: "/k", query: url.Values{"a": {"b"}}, header: http.Header{}}
	if got := send(t, srv, ch, s, "wrong-secret", now, nil); !errors.Is(got.err, ErrSignature) {
		t.Fatalf("wrong secret: %v", got.err)
	}
	if got := send(t, srv, ch, s, testSecret, now.Add(-20*time.Minute), nil); !errors.Is(got.err, ErrSkew) {
		t.Fatalf("skewed: %v", got.err)
	}
	if got := send(t, srv, ch, s, testSecret, now, func(q *http.Request) { q.Header.Del("Authorization") }); !errors.Is(got.err, ErrMissing) {
		t.Fatalf("unsigned: %v", got.err)
	}
	if got := send(t, srv, ch, s, testSecret, now, func(q *http.Request) {
		q.Header.Set("Authorization", strings.Replace(q.Header.Get("Authorization"), testKey, "AKIDUNKNOWN000000000", 1))
	}); !errors.Is(got.err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", got.err)
	}
	if got := send(t, srv, ch, s, testSecret, now, func(q *http.Request) {
		q.Header.Set("Authorization", strings.Replace(q.Header.Get("Authorization"), testRegion, "us-east-1", 1))
	}); !errors.Is(got.err, ErrRegion) {
		t.Fatalf("other region: %v", got.err)
	}
	put := sent{method: "PUT", path: "/devgate-lab-relay/k", query: url.Values{}, header: http.Header{}, body: []byte("hello"), s3: true}
	if got := send(t, srv, ch, put, testSecret, now, func(q *http.Request) {
		q.Body = io.NopCloser(strings.NewReader("hellO"))
	}); !errors.Is(got.err, ErrPayloadHash) {
		t.Fatalf("changed body: %v", got.err)
	}
	pre := sent{method: "GET", path: "/devgate-lab-relay/k", query: url.Values{}, header: http.Header{}, s3: true, presign: true}
	if got := send(t, srv, ch, pre, testSecret, now.Add(-6*time.Minute), nil); !errors.Is(got.err, ErrExpired) {
		t.Fatalf("presigned URL past X-Amz-Expires: %v", got.err)
	}
}

// FuzzVerify: arbitrary Authorization headers, query strings and dates never
// panic and never verify without the secret.
func FuzzVerify(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE000000001/20260101/eu-west-3/ssm/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "a=b", "20260101T000000Z")
	f.Add("", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE000000001%2F20260101%2Feu-west-3%2Fs3%2Faws4_request&X-Amz-Expires=9&X-Amz-SignedHeaders=host&X-Amz-Signature=1", "")
	f.Add("AWS4-HMAC-SHA256 ,,,=", "%zz&=&==", "Mon, 02 Jan 2006 15:04:05 GMT")
	v := newVerifier(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f.Fuzz(func(t *testing.T, auth, rawQuery, date string) {
		r := httptest.NewRequest("GET", "http://lab/k", nil)
		r.URL.RawQuery = rawQuery
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		r.Header.Set("X-Amz-Date", date)
		if _, err := v.Verify(r, nil); err == nil {
			t.Fatalf("verified without a signature: auth %q query %q", auth, rawQuery)
		}
		Scope(r)
	})
}
