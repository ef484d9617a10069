// Package labs3 serves S3 on devgate-lab's endpoint: gofakes3 (a kept S3
// fake, in memory) behind the lab's SigV4 check, path-style
// (http://endpoint/bucket/key), presigned URLs included. It is what
// `devgate cp --via s3` relays through in tests and benchmarks.
//
// NewOnDisk keeps multipart uploads and the objects they make in files
// (see disk) for objects of many GiB. Throttle caps each request's body
// rate, so that tests can interrupt a relayed copy part-way.
//
// It does not model S3's consistency, storage classes or bucket policies.
package labs3

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/devgate/devgate/internal/lab/labapi"
)

// DefaultBucket is the bucket devgate-lab creates unless told otherwise.
const DefaultBucket = "devgate-lab-relay"

// Service is the lab's S3.
type Service struct {
	backend *s3mem.Backend
	handler http.Handler
	disk    *disk // nil: multipart uploads in memory (gofakes3)
	reqs    atomic.Int64
	rate    atomic.Int64 // bytes per second per request body, 0: unlimited

	mu   sync.Mutex
	done map[string]int64 // operation → successful answers
}

// New returns S3 with the given buckets already created.
func New(buckets ...string) *Service {
	b := s3mem.New()
	for _, name := range buckets {
		if err := b.CreateBucket(name); err != nil {
			log.Printf("labs3: create bucket %s: %v", name, err)
		}
	}
	f := gofakes3.New(b, gofakes3.WithLogger(gofakes3.DiscardLog()))
	return &Service{backend: b, handler: f.Server(), done: map[string]int64{}}
}

// NewOnDisk is New with multipart uploads and the objects they make kept in
// files under dir (created; Close removes what is left), not in memory.
func NewOnDisk(dir string, buckets ...string) (*Service, error) {
	d, err := newDisk(dir)
	if err != nil {
		return nil, fmt.Errorf("labs3: %w", err)
	}
	s := New(buckets...)
	d.bucket = func(name string) bool { ok, err := s.backend.BucketExists(name); return ok && err == nil }
	s.disk = d
	return s, nil
}

// Close removes the files of NewOnDisk.
func (s *Service) Close() {
	if s.disk != nil {
		s.disk.cleanup()
	}
}

// Throttle caps the rate at which each request's body is read and each
// answer's body written (bytes per second; 0: no cap).
func (s *Service) Throttle(bytesPerSecond int64) { s.rate.Store(bytesPerSecond) }

// Completed counts the successful answers (2xx) to op: "UploadPart",
// "PutObject", "GetObject", "CompleteMultipartUpload", "ListParts",
// "CreateMultipartUpload", "DeleteObject" or "Other".
func (s *Service) Completed(op string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done[op]
}

// operation names the S3 call r makes (path-style, query as in the S3 API Reference).
func operation(r *http.Request) string {
	q := r.URL.Query()
	_, uploads := q["uploads"]
	id := q.Get("uploadId")
	switch {
	case r.Method == http.MethodPost && uploads:
		return "CreateMultipartUpload"
	case r.Method == http.MethodPut && id != "":
		return "UploadPart"
	case r.Method == http.MethodGet && id != "":
		return "ListParts"
	case r.Method == http.MethodPost && id != "":
		return "CompleteMultipartUpload"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodDelete && id == "":
		return "DeleteObject"
	}
	return "Other"
}

type statusWriter struct {
	http.ResponseWriter
	status int
	rate   int64
	start  time.Time
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	pace(w.start, w.n, w.rate)
	return n, err
}

// pace sleeps until n bytes since start are within rate (bytes/s; 0: no cap).
func pace(start time.Time, n, rate int64) {
	if rate > 0 {
		if d := time.Duration(float64(n)/float64(rate)*float64(time.Second)) - time.Since(start); d > 0 {
			time.Sleep(d)
		}
	}
}

type paced struct {
	r     io.ReadCloser
	rate  int64
	start time.Time
	n     int64
}

func (p *paced) Read(b []byte) (int, error) {
	if p.rate > 0 && len(b) > 64<<10 {
		b = b[:64<<10]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	pace(p.start, p.n, p.rate)
	return n, err
}

func (p *paced) Close() error { return p.r.Close() }

// Register mounts S3 on the endpoint (requests signed for service "s3").
func (s *Service) Register(r *labapi.Registry) {
	r.Raw("s3", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.reqs.Add(1)
		rate := s.rate.Load()
		sw := &statusWriter{ResponseWriter: w, rate: rate, start: time.Now()}
		if rate > 0 && req.Body != nil {
			req.Body = &paced{r: req.Body, rate: rate, start: sw.start}
		}
		if s.disk == nil || !s.disk.serve(sw, req) {
			s.handler.ServeHTTP(sw, req)
		}
		if sw.status == 0 || sw.status < 300 {
			op := operation(req)
			s.mu.Lock()
			s.done[op]++
			s.mu.Unlock()
		}
	}))
}

// Requests counts the S3 requests served.
func (s *Service) Requests() int64 { return s.reqs.Load() }

// Objects lists the keys in bucket.
func (s *Service) Objects(bucket string) ([]string, error) {
	res, err := s.backend.ListBucket(bucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		return nil, fmt.Errorf("labs3: list %s: %w", bucket, err)
	}
	var keys []string
	for _, c := range res.Contents {
		keys = append(keys, c.Key)
	}
	if s.disk != nil {
		keys = append(keys, s.disk.keys(bucket)...)
	}
	return keys, nil
}
