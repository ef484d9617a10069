// Package labapi is the seam between devgate-lab's HTTP front and its services.
//
// The front (package lab) verifies SigV4, picks the wire protocol, applies API
// faults and writes AWS's error shapes; services only register functions for
// the operations they answer. labapi holds no state and does no I/O.
package labapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
)

// Error is an AWS API error: the code and message a client sees, and the HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HTTPStatus is Status, or 400 when unset.
func (e *Error) HTTPStatus() int {
	if e.Status == 0 {
		return http.StatusBadRequest
	}
	return e.Status
}

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// JSONFunc answers one awsJson1.1 operation; the result is marshalled with encoding/json.
type JSONFunc func(ctx context.Context, body []byte) (any, error)

// QueryFunc answers one query-protocol action; the result is the whole response
// struct with its XMLName, marshalled with encoding/xml.
type QueryFunc func(ctx context.Context, form url.Values) (any, error)

// Registry maps operations to the functions that answer them.
type Registry struct {
	mu    sync.RWMutex
	json  map[string]JSONFunc
	query map[string]QueryFunc
	raw   map[string]http.Handler
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{json: map[string]JSONFunc{}, query: map[string]QueryFunc{}, raw: map[string]http.Handler{}}
}

// JSON registers fn for the full X-Amz-Target, e.g. "AmazonSSM.StartSession".
func (r *Registry) JSON(target string, fn JSONFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.json[target] = fn
}

// Query registers fn for action of the service named in the SigV4 scope ("ec2", "sts").
func (r *Registry) Query(service, action string, fn QueryFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.query[service+"/"+action] = fn
}

// Raw registers a handler for every request signed for service (e.g. "s3").
func (r *Registry) Raw(service string, h http.Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw[service] = h
}

// LookupJSON returns the function for target.
func (r *Registry) LookupJSON(target string) (JSONFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.json[target]
	return fn, ok
}

// LookupQuery returns the function for service and action.
func (r *Registry) LookupQuery(service, action string) (QueryFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.query[service+"/"+action]
	return fn, ok
}

// LookupRaw returns the handler for service.
func (r *Registry) LookupRaw(service string) (http.Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.raw[service]
	return h, ok
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyCaller
	keyUserAgent
)

// WithUserAgent returns ctx carrying the request's User-Agent header.
func WithUserAgent(ctx context.Context, ua string) context.Context {
	return context.WithValue(ctx, keyUserAgent, ua)
}

// UserAgent is the User-Agent header of the request (the SDKs put the
// application id there as "app/<id>").
func UserAgent(ctx context.Context) string {
	s, _ := ctx.Value(keyUserAgent).(string)
	return s
}

// WithRequest returns ctx carrying the request id and the caller's access key.
func WithRequest(ctx context.Context, requestID, accessKey string) context.Context {
	ctx = context.WithValue(ctx, keyRequestID, requestID)
	return context.WithValue(ctx, keyCaller, accessKey)
}

// RequestID is the id the front puts in the response headers and bodies.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

// Caller is the access key id that signed the request.
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(keyCaller).(string)
	return s
}
