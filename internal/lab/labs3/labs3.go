// Package labs3 serves S3 on devgate-lab's endpoint: gofakes3 (a kept S3
// fake, in memory) behind the lab's SigV4 check, path-style
// (http://endpoint/bucket/key), presigned URLs included. It is what
// `devgate cp --via s3` relays through in tests and benchmarks.
//
// It does not model S3's consistency, storage classes or bucket policies.
package labs3

import (
	"fmt"
	"log"
	"net/http"
	"sync/atomic"

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
	reqs    atomic.Int64
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
	return &Service{backend: b, handler: f.Server()}
}

// Register mounts S3 on the endpoint (requests signed for service "s3").
func (s *Service) Register(r *labapi.Registry) {
	r.Raw("s3", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.reqs.Add(1)
		s.handler.ServeHTTP(w, req)
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
	return keys, nil
}
