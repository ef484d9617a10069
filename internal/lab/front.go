package lab

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/devgate/devgate/internal/lab/labapi"
	"github.com/devgate/devgate/internal/lab/sigv4"
)

// maxBody bounds a control-plane request body (S3 parts included).
const maxBody = 512 << 20

// front is the lab's one HTTP endpoint: SigV4 check, protocol dispatch, faults, error shapes.
type front struct {
	reg      *labapi.Registry
	verifier *sigv4.Verifier
	dataPath http.Handler // the data-channel WebSocket (not SigV4-checked, token-checked)
	admin    http.Handler // /_lab/: the lab's own controls (admin-token-checked)
	log      *slog.Logger
	latency  func() time.Duration
	throttle func() float64
	// expired says whether the credentials of an access key have expired.
	expired func(accessKey string) bool
	// unsigned serves the requests that carry no SigV4 (SSO OIDC, the SSO
	// portal, the lab's own pages); false when r is not one of them.
	unsigned func(w http.ResponseWriter, r *http.Request) bool
	// sessionToken is the session token temporary credentials must send.
	sessionToken func(accessKey string) (string, bool)

	rmu       sync.Mutex
	throttles int
	rnd       *rand.Rand

	cmu    sync.Mutex
	calls  map[string]int
	agents map[string]string // operation → User-Agent of its last call
}

func newRequestID() string {
	var b [16]byte
	crand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// protocol of a request: how errors are shaped.
type protocol int

const (
	protoJSON protocol = iota
	protoEC2
	protoQuery
	protoS3
)

func protocolOf(r *http.Request, service string) protocol {
	switch {
	case r.Header.Get("X-Amz-Target") != "":
		return protoJSON
	case service == "ec2":
		return protoEC2
	case service == "s3":
		return protoS3
	case service == "sts" || service == "iam":
		return protoQuery
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return protoQuery
	}
	return protoJSON
}

func (f *front) count(op, userAgent string) {
	f.cmu.Lock()
	f.calls[op]++
	if f.agents == nil {
		f.agents = map[string]string{}
	}
	f.agents[op] = userAgent
	f.cmu.Unlock()
}

func (f *front) callTotal() int {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *front) userAgent(op string) string {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.agents[op]
}

func (f *front) callCount(op string) int {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.calls[op]
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/data-channel/") {
		f.dataPath.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/_lab/") {
		f.admin.ServeHTTP(w, r)
		return
	}
	if f.unsigned != nil && f.unsigned(w, r) {
		return
	}
	reqID := newRequestID()
	_, _, service, _ := sigv4.Scope(r)
	proto := protocolOf(r, service)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return
	}
	if len(body) > maxBody {
		f.writeErr(w, proto, reqID, labapi.Errorf(413, "RequestEntityTooLarge", "request body larger than %d bytes", maxBody))
		return
	}
	var checkBody []byte = body
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		checkBody = nil
	}
	res, err := f.verifier.Verify(r, checkBody)
	if err != nil {
		f.log.Info("request refused", "service", service, "err", err)
		f.writeErr(w, proto, reqID, authError(proto, service, err))
		return
	}
	if tok, ok := f.sessionToken(res.AccessKey); ok {
		got := r.Header.Get("X-Amz-Security-Token")
		if got == "" {
			got = r.URL.Query().Get("X-Amz-Security-Token")
		}
		if got != tok {
			f.writeErr(w, proto, reqID, authError(proto, service, sigv4.ErrUnknownKey))
			return
		}
	}
	if f.expired != nil && f.expired(res.AccessKey) {
		// What AWS answers a request signed with temporary credentials past
		// their expiry: ExpiredTokenException (JSON services) or
		// ExpiredToken (query and EC2 protocols).
		code := "ExpiredToken"
		if proto == protoJSON {
			code = "ExpiredTokenException"
		}
		f.writeErr(w, proto, reqID, labapi.Errorf(400, code, "The security token included in the request is expired"))
		return
	}
	ctx := labapi.WithRequest(r.Context(), reqID, res.AccessKey)
	ctx = labapi.WithUserAgent(ctx, r.Header.Get("User-Agent"))
	if d := f.latency(); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		f.serveJSON(ctx, w, target, body, reqID)
		return
	}
	if h, ok := f.reg.LookupRaw(res.Service); ok {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.ContentLength = int64(len(body))
		w.Header().Set("x-amz-request-id", reqID)
		f.count(res.Service+":"+r.Method, r.Header.Get("User-Agent"))
		h.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.writeErr(w, proto, reqID, labapi.Errorf(400, "MalformedQueryString", "%v", err))
		return
	}
	for k, v := range r.URL.Query() {
		if !strings.HasPrefix(k, "X-Amz-") {
			form[k] = append(form[k], v...)
		}
	}
	action := form.Get("Action")
	fn, ok := f.reg.LookupQuery(res.Service, action)
	if !ok {
		f.writeErr(w, proto, reqID, labapi.Errorf(400, "InvalidAction", "The action %s is not valid for this web service.", action))
		return
	}
	f.count(action, r.Header.Get("User-Agent"))
	if f.throttled() {
		code := "Throttling"
		if proto == protoEC2 {
			code = "RequestLimitExceeded"
		}
		f.writeErr(w, proto, reqID, labapi.Errorf(503, code, "Request limit exceeded."))
		return
	}
	out, err := fn(ctx, form)
	if err != nil {
		f.writeErr(w, proto, reqID, asAPIError(err))
		return
	}
	b, err := xml.Marshal(out)
	if err != nil {
		f.writeErr(w, proto, reqID, labapi.Errorf(500, "InternalError", "%v", err))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("x-amzn-RequestId", reqID)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

func (f *front) throttled() bool {
	p := f.throttle()
	if p <= 0 {
		return false
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	hit := f.rnd.Float64() < p
	if hit {
		f.throttles++
	}
	return hit
}

// throttleCount is how many calls were answered with a throttling error.
func (f *front) throttleCount() int {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	return f.throttles
}

func (f *front) serveJSON(ctx context.Context, w http.ResponseWriter, target string, body []byte, reqID string) {
	fn, ok := f.reg.LookupJSON(target)
	if !ok {
		f.writeErr(w, protoJSON, reqID, labapi.Errorf(400, "UnknownOperationException", "unknown operation %s", target))
		return
	}
	op := target[strings.LastIndexByte(target, '.')+1:]
	f.count(op, labapi.UserAgent(ctx))
	if f.throttled() {
		f.writeErr(w, protoJSON, reqID, labapi.Errorf(400, "ThrottlingException", "Rate exceeded"))
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	out, err := fn(ctx, body)
	if err != nil {
		f.writeErr(w, protoJSON, reqID, asAPIError(err))
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		f.writeErr(w, protoJSON, reqID, labapi.Errorf(500, "InternalServerError", "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", reqID)
	w.Write(b)
}

func asAPIError(err error) *labapi.Error {
	var e *labapi.Error
	if errors.As(err, &e) {
		return e
	}
	return labapi.Errorf(500, "InternalFailure", "%v", err)
}

// authError maps a SigV4 failure to the code and shape the service uses.
func authError(proto protocol, service string, err error) *labapi.Error {
	type codes struct{ missing, unknownKey, badSig, skew string }
	var c codes
	status := 400
	switch proto {
	case protoJSON:
		c = codes{"MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException", "InvalidSignatureException"}
	case protoEC2:
		c = codes{"MissingAuthenticationToken", "AuthFailure", "AuthFailure", "RequestExpired"}
		status = 401
	case protoS3:
		c = codes{"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed"}
		status = 403
	default:
		c = codes{"MissingAuthenticationToken", "InvalidClientTokenId", "SignatureDoesNotMatch", "SignatureDoesNotMatch"}
		status = 403
	}
	switch {
	case errors.Is(err, sigv4.ErrMissing):
		return labapi.Errorf(status, c.missing, "Missing Authentication Token")
	case errors.Is(err, sigv4.ErrUnknownKey):
		if proto == protoEC2 {
			return labapi.Errorf(status, c.unknownKey, "AWS was not able to validate the provided access credentials")
		}
		if proto == protoS3 {
			return labapi.Errorf(status, c.unknownKey, "The AWS Access Key Id you provided does not exist in our records.")
		}
		return labapi.Errorf(status, c.unknownKey, "The security token included in the request is invalid.")
	case errors.Is(err, sigv4.ErrSkew), errors.Is(err, sigv4.ErrExpired):
		return labapi.Errorf(status, c.skew, "Signature expired: %v", err)
	case errors.Is(err, sigv4.ErrRegion):
		if proto == protoS3 {
			return labapi.Errorf(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; %v", err)
		}
		return labapi.Errorf(status, c.badSig, "Credential should be scoped to a valid region: %v", err)
	case errors.Is(err, sigv4.ErrMalformed):
		code := "IncompleteSignatureException"
		if proto == protoS3 {
			code = "AuthorizationHeaderMalformed"
		} else if proto != protoJSON {
			code = "IncompleteSignature"
		}
		return labapi.Errorf(400, code, "%v", err)
	case errors.Is(err, sigv4.ErrPayloadHash):
		if proto == protoS3 {
			return labapi.Errorf(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}
	if proto == protoEC2 {
		return labapi.Errorf(status, c.badSig, "AWS was not able to validate the provided access credentials")
	}
	return labapi.Errorf(status, c.badSig, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
}

func (f *front) writeErr(w http.ResponseWriter, proto protocol, reqID string, e *labapi.Error) {
	w.Header().Set("x-amzn-RequestId", reqID)
	status := e.HTTPStatus()
	switch proto {
	case protoJSON:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("x-amzn-ErrorType", e.Code)
		w.WriteHeader(status)
		b, _ := json.Marshal(map[string]string{"__type": e.Code, "message": e.Message})
		w.Write(b)
	case protoEC2:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>",
			xml.Header, xmlEsc(e.Code), xmlEsc(e.Message), reqID)
	case protoS3:
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("x-amz-request-id", reqID)
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s<Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId></Error>",
			xml.Header, xmlEsc(e.Code), xmlEsc(e.Message), reqID)
	default:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(status)
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		fmt.Fprintf(w, "%s<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>",
			xml.Header, typ, xmlEsc(e.Code), xmlEsc(e.Message), reqID)
	}
}

func xmlEsc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
