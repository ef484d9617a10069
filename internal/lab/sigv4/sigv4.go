// Package sigv4 verifies AWS Signature Version 4 on requests that reach
// devgate-lab: the Authorization header form and the presigned query form.
// It recomputes the signature with the lab's secret and reports which part
// failed. It does not sign requests and knows nothing of the services.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Reasons a request fails verification; errors wrap one of them.
var (
	ErrMissing     = errors.New("missing authentication")
	ErrMalformed   = errors.New("malformed authorization")
	ErrUnknownKey  = errors.New("unknown access key")
	ErrSignature   = errors.New("signature mismatch")
	ErrRegion      = errors.New("wrong region in credential scope")
	ErrSkew        = errors.New("request time too skewed")
	ErrExpired     = errors.New("presigned request expired")
	ErrPayloadHash = errors.New("payload hash mismatch")
)

// MaxSkew is the clock difference AWS tolerates.
const MaxSkew = 15 * time.Minute

// Result is what a verified request was signed with.
type Result struct {
	AccessKey string
	Region    string
	Service   string
	Time      time.Time
	Presigned bool
	// PayloadHash is the signed payload hash (hex, UNSIGNED-PAYLOAD or STREAMING-…).
	PayloadHash string
}

// Verifier checks signatures against known keys.
type Verifier struct {
	// Secret returns the secret of an access key.
	Secret func(accessKey string) (string, bool)
	Region string
	Now    func() time.Time
}

// Scope parses the credential scope of r without verifying anything, so the
// caller can pick the error shape of the service the request was meant for.
func Scope(r *http.Request) (accessKey, region, service string, ok bool) {
	cred := ""
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "AWS4-HMAC-SHA256") {
		f := authFields(a)
		cred = f["Credential"]
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[3], true
}

func authFields(a string) map[string]string {
	f := map[string]string{}
	rest := strings.TrimSpace(strings.TrimPrefix(a, "AWS4-HMAC-SHA256"))
	for _, p := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok {
			f[k] = v
		}
	}
	return f
}

// Verify checks r, whose body has already been read into body (nil for a
// streamed body whose hash is taken from X-Amz-Content-Sha256 without checking).
func (v *Verifier) Verify(r *http.Request, body []byte) (Result, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	q := r.URL.Query()
	var (
		res                               Result
		cred, signedHeaders, sig, amzDate string
		payloadHash                       string
	)
	if a := r.Header.Get("Authorization"); a != "" {
		if !strings.HasPrefix(a, "AWS4-HMAC-SHA256 ") {
			return res, fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
		}
		f := authFields(a)
		cred, signedHeaders, sig = f["Credential"], f["SignedHeaders"], f["Signature"]
		amzDate = r.Header.Get("X-Amz-Date")
		if amzDate == "" {
			amzDate = r.Header.Get("Date")
		}
		payloadHash = r.Header.Get("X-Amz-Content-Sha256")
	} else if q.Get("X-Amz-Algorithm") != "" {
		if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
			return res, fmt.Errorf("%w: unsupported algorithm", ErrMalformed)
		}
		res.Presigned = true
		cred, signedHeaders, sig = q.Get("X-Amz-Credential"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature")
		amzDate = q.Get("X-Amz-Date")
		payloadHash = q.Get("X-Amz-Content-Sha256")

	} else {
		return res, ErrMissing
	}
	if cred == "" || signedHeaders == "" || sig == "" || amzDate == "" {
		return res, fmt.Errorf("%w: Authorization lacks Credential, SignedHeaders, Signature or date", ErrMalformed)
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return res, fmt.Errorf("%w: credential %q is not <key>/<date>/<region>/<service>/aws4_request", ErrMalformed, cred)
	}
	res.AccessKey, res.Region, res.Service = parts[0], parts[2], parts[3]
	if res.Presigned && payloadHash == "" && res.Service == "s3" {
		// S3's presigned URLs sign no payload (S3 API reference,
		// "Authenticating Requests: Using Query Parameters"); other services
		// sign the payload's hash, computed below.
		payloadHash = "UNSIGNED-PAYLOAD"
	}
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		if t, err = http.ParseTime(amzDate); err != nil {
			return res, fmt.Errorf("%w: bad date %q", ErrMalformed, amzDate)
		}
	}
	res.Time = t
	if t.Format("20060102") != parts[1] {
		return res, fmt.Errorf("%w: credential date %s does not match request date", ErrSignature, parts[1])
	}
	secret, ok := v.Secret(res.AccessKey)
	if !ok {
		return res, ErrUnknownKey
	}
	if res.Region != v.Region {
		return res, fmt.Errorf("%w: %q, expecting %q", ErrRegion, res.Region, v.Region)
	}
	n := now()
	if res.Presigned {
		exp, err := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err != nil || exp < 1 || exp > 604800 {
			return res, fmt.Errorf("%w: X-Amz-Expires must be 1..604800", ErrMalformed)
		}
		if n.After(t.Add(time.Duration(exp) * time.Second)) {
			return res, ErrExpired
		}
		if t.After(n.Add(MaxSkew)) {
			return res, ErrSkew
		}
	} else if d := n.Sub(t); d > MaxSkew || d < -MaxSkew {
		return res, fmt.Errorf("%w: request time %s, server time %s", ErrSkew, t.Format(time.RFC3339), n.UTC().Format(time.RFC3339))
	}
	if payloadHash == "" {
		sum := sha256.Sum256(body)
		payloadHash = hex.EncodeToString(sum[:])
	} else if body != nil && len(payloadHash) == 64 {
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != payloadHash {
			return res, ErrPayloadHash
		}
	}
	res.PayloadHash = payloadHash
	creq := CanonicalRequest(r, signedHeaders, payloadHash, res.Service == "s3", res.Presigned)
	scope := strings.Join(parts[1:], "/")
	want := Signature(secret, amzDate, parts[1], res.Region, res.Service, scope, creq)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return res, ErrSignature
	}
	return res, nil
}

// Signature computes the hex signature of a canonical request.
func Signature(secret, amzDate, date, region, service, scope, canonicalRequest string) string {
	h := sha256.Sum256([]byte(canonicalRequest))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, sts))
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// CanonicalRequest builds the SigV4 canonical request of r.
func CanonicalRequest(r *http.Request, signedHeaders, payloadHash string, s3, presigned bool) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	if !s3 {
		path = escape(path, false)
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, presigned))
	b.WriteByte('\n')
	names := strings.Split(signedHeaders, ";")
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(headerValue(r, n))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(signedHeaders)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	case "transfer-encoding":
		return strings.Join(r.TransferEncoding, ",")
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

func canonicalQuery(raw string, presigned bool) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var kvs []kv
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		uk, err1 := url.QueryUnescape(k)
		uv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			uk, uv = k, v
		}
		if presigned && uk == "X-Amz-Signature" {
			continue
		}
		kvs = append(kvs, kv{escape(uk, true), escape(uv, true)})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].k != kvs[j].k {
			return kvs[i].k < kvs[j].k
		}
		return kvs[i].v < kvs[j].v
	})
	parts := make([]string, len(kvs))
	for i, p := range kvs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// escape percent-encodes everything but RFC 3986 unreserved characters (and
// '/' unless encodeSlash).
func escape(s string, encodeSlash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}
