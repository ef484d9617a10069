package labs3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labs3"
	"github.com/devgate/devgate/internal/lab/labtest"
)

// TestOnDiskMultipart: NewOnDisk's multipart uploads through the real SDK:
// parts (one sent twice), ListParts, Complete, whole and ranged GETs across
// part boundaries, HEAD, DELETE, and S3's errors for an unknown upload, a
// part never sent and a missing bucket. The parts are files, removed with
// the object.
func TestOnDiskMultipart(t *testing.T) {
	dir := t.TempDir()
	svc, err := labs3.NewOnDisk(dir, "relay")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	l := labtest.Start(t, lab.Options{Services: []lab.Service{svc}})
	cfg := l.AWSConfig()
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.DisableLogOutputChecksumValidationSkipped = true })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	data := make([]byte, 3<<20+12345)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	const part = 1 << 20
	cu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []s3types.CompletedPart
	for i := 0; i*part < len(data); i++ {
		body := data[i*part : min((i+1)*part, len(data))]
		if i == 1 { // sent twice: the second replaces the first
			if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin"), UploadId: cu.UploadId,
				PartNumber: aws.Int32(2), Body: bytes.NewReader(make([]byte, 10))}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin"), UploadId: cu.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin"), UploadId: cu.UploadId})
	if err != nil || len(lp.Parts) != 4 || aws.ToInt64(lp.Parts[1].Size) != part || aws.ToString(lp.Parts[3].ETag) != aws.ToString(parts[3].ETag) {
		t.Fatalf("ListParts: %v %+v", err, lp)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin"), UploadId: cu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: append(parts[:2:2], s3types.CompletedPart{PartNumber: aws.Int32(9), ETag: parts[2].ETag})}})
	var apiErr interface{ ErrorCode() string }
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidPart" {
		t.Fatalf("Complete with a part never sent: %v", err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin"), UploadId: cu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin"), UploadId: cu.UploadId})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NoSuchUpload" {
		t.Fatalf("ListParts of a completed upload: %v, want NoSuchUpload", err)
	}
	get := func(rng string) []byte {
		in := &s3.GetObjectInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin")}
		if rng != "" {
			in.Range = aws.String(rng)
		}
		out, err := c.GetObject(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return b
	}
	if !bytes.Equal(get(""), data) {
		t.Fatal("whole GET differs")
	}
	if !bytes.Equal(get("bytes=1048000-2097999"), data[1048000:2098000]) {
		t.Fatal("ranged GET across parts differs")
	}
	if h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin")}); err != nil || aws.ToInt64(h.ContentLength) != int64(len(data)) {
		t.Fatalf("HEAD: %v %+v", err, h)
	}
	if keys, _ := svc.Objects("relay"); len(keys) != 1 || keys[0] != "a/b.bin" {
		t.Fatalf("objects %v", keys)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("relay"), Key: aws.String("a/b.bin")}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := svc.Objects("relay"); len(keys) != 0 {
		t.Fatalf("objects after delete %v", keys)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left: %v", ents)
	}
	_, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("nosuch"), Key: aws.String("x")})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NoSuchBucket" {
		t.Fatalf("missing bucket: %v", err)
	}
}
