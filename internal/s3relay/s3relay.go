// Package s3relay copies one file between this machine and an instance
// through an S3 bucket (devgate cp --via s3): devgate signs presigned URLs
// with the user's credentials and runs curl on the instance over an SSH
// connection, so the instance needs curl but no IAM permissions.
//
// Instance → here: a multipart upload whose part URLs are presigned here and
// PUT by parallel curls on the instance, completed here, then parallel
// ranged GETs into a partial file. Here → instance: a multipart upload from
// here, then parallel ranged curls of a presigned GET on the instance into a
// partial file. Either way the sha256 is compared with the source's, the
// partial file is renamed into place, and the object is deleted unless
// Options.Keep. It copies single files; folders and resumption are the
// tunnel mode's (package transfer).
package s3relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/shquote"
	"github.com/devgate/devgate/internal/sshconn"
	"github.com/devgate/devgate/internal/transfer"
)

// Options of one relayed copy.
type Options struct {
	Bucket   string
	Keep     bool
	PartSize int64 // default 16 MiB
	Parallel int   // curls on the instance and requests here (default 8)
	Progress transfer.Progress
	// Now names objects (tests); default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// client returns an S3 client (path-style when a custom endpoint is set, as the lab's).
func client(cfg aws.Config) (*s3.Client, *s3.PresignClient) {
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
	return c, s3.NewPresignClient(c)
}

func objectKey(o Options, base string) string {
	var b [6]byte
	rand.Read(b[:])
	return "devgate-cp/" + o.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]) + "/" + base
}

func s3Err(err error, action string) error {
	return awsapi.Classify(err, action)
}

// Download copies src on the instance to dst here.
func Download(ctx context.Context, cfg aws.Config, c *sshconn.Client, src, dst string, o Options) (transfer.Stats, error) {
	o.defaults()
	o.Progress = newTwoLegs(o.Progress)
	start := time.Now()
	st := transfer.Stats{Files: 1, Sessions: 1}
	fi, err := c.SFTP.Stat(src)
	if err != nil {
		return st, fsErr(err, "source", src, "on the instance", exitcode.RemoteIO)
	}
	if fi.IsDir() {
		return st, exitcode.New(exitcode.Usage, "use --via tunnel -r for folders", "source %s is a directory (the S3 relay copies single files)", src)
	}
	if di, err := os.Stat(dst); err == nil && di.IsDir() {
		dst = filepath.Join(dst, path.Base(src))
		if di, err := os.Stat(dst); err == nil && di.IsDir() {
			return st, exitcode.New(exitcode.Usage, "name a file, or a directory to copy into", "destination %s is a directory", dst)
		}
	}
	size := fi.Size()
	st.Bytes = size
	name := path.Base(src)
	if o.Progress != nil {
		o.Progress.Total(1, 2*size, 0)
		o.Progress.FileStart(name, 2*size, 0)
	}
	remoteSum := make(chan result, 1)
	go func() {
		s, err := sum(ctx, c, src)
		remoteSum <- result{s, err}
	}()
	s3c, pre := client(cfg)
	key := objectKey(o, name)
	partial := dst + transfer.PartialSuffix
	if size > 0 {
		if err := putFromInstance(ctx, s3c, pre, c, src, size, key, name, o); err != nil {
			return st, err
		}
		if !o.Keep {
			defer deleteObject(s3c, o.Bucket, key)
		}
	}
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		err = f.Chmod(0o600) // a partial left by an older devgate
	}
	if err != nil {
		return st, fsErr(err, "destination", partial, "here", exitcode.LocalIO)
	}
	err = getRanges(ctx, s3c, o, key, size, f, name)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fsErr(cerr, "destination", partial, "here", exitcode.LocalIO)
	}
	if err != nil {
		return st, err
	}
	st.Moved = size
	local, err := localSum(ctx, partial)
	if err != nil {
		return st, fsErr(err, "destination", partial, "here", exitcode.LocalIO)
	}
	r := <-remoteSum
	if r.err != nil {
		return st, exitcode.Wrap(r.err, exitcode.RemoteIO, "", "sha256sum of %s on the instance failed", src)
	}
	if r.sum != local {
		return st, exitcode.New(exitcode.Checksum, "run the same command again", "sha256 of %s (%s) differs from the instance's (%s); partial file kept", partial, local[:12], r.sum[:12])
	}
	os.Chmod(partial, fi.Mode().Perm())
	os.Chtimes(partial, fi.ModTime(), fi.ModTime())
	if err := os.Rename(partial, dst); err != nil {
		return st, fsErr(err, "destination", dst, "here", exitcode.LocalIO)
	}
	if o.Progress != nil {
		o.Progress.FileDone(name)
	}
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

type result struct {
	sum string
	err error
}

// putFromInstance runs the multipart upload of src by curl on the instance.
func putFromInstance(ctx context.Context, s3c *s3.Client, pre *s3.PresignClient, c *sshconn.Client, src string, size int64, key, name string, o Options) error {
	cu, err := s3c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(o.Bucket), Key: aws.String(key)})
	if err != nil {
		return bucketErr(s3Err(err, "s3:CreateMultipartUpload"), o.Bucket)
	}
	id := cu.UploadId
	ok := false
	defer func() {
		if !ok {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			s3c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(o.Bucket), Key: aws.String(key), UploadId: id})
			cancel()
		}
	}()
	n := (size + o.PartSize - 1) / o.PartSize
	var lines strings.Builder
	for i := range n {
		off := i * o.PartSize
		ln := min(o.PartSize, size-off)
		req, err := pre.PresignUploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(o.Bucket), Key: aws.String(key),
			UploadId: id, PartNumber: aws.Int32(int32(i + 1))}, s3.WithPresignExpires(presignExpiry(off+ln, o.Parallel)))
		if err != nil {
			return fmt.Errorf("presign part %d: %w", i+1, err)
		}
		fmt.Fprintf(&lines, "%d %d %d %s\n", i+1, off, ln, req.URL)
	}
	// Each part: its bytes by dd, PUT by curl with a known length, the ETag
	// printed. dd feeds curl's stdin, so the URL comes on descriptor 3.
	part := `n=$1; off=$2; len=$3
etag=$(` + urlConfig + ` | { dd if="$F" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" 2>/dev/null |
  curl -sS -f --retry 3 -K /dev/fd/3 -X PUT -H "Content-Type: application/octet-stream" -H "Expect:" --data-binary @- -D - -o /dev/null; } 3<&0 |
  tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
[ -n "$etag" ] || { echo "part $n: upload failed" >&2; exit 1; }
echo "$n $len $etag"`
	cmd := relayScript(src, o.Parallel, part)
	parts, err := runParts(ctx, c, cmd, lines.String(), name, o)
	if err != nil {
		return err
	}
	if int64(len(parts)) != n {
		return exitcode.New(exitcode.RemoteIO, "", "the instance uploaded %d of %d parts", len(parts), n)
	}
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	_, err = s3c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(o.Bucket), Key: aws.String(key),
		UploadId: id, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return s3Err(err, "s3:CompleteMultipartUpload")
	}
	ok = true
	return nil
}

// urlConfig prints the curl config line ("url = ...") of part $n from the
// part list "$D/p" (lines "N OFF LEN URL").
const urlConfig = `awk -v n="$n" '$1 == n { printf "url = \"%s\"\n", $4; exit }' "$D/p"`

// relayScript is the command that runs part (a POSIX sh script taking
// "N OFF LEN" as $1..$3, the file in $F) for every line of the part list,
// parallel curls at a time. The part list, presigned URLs included, comes
// on stdin and is kept in a 0600 file in a private temporary directory
// (umask 077, removed on exit); each part hands its URL to curl as a config
// on a pipe (curl -K), so no URL is ever on a command line, where any user
// of a shared instance could read it with ps. Files the parts create are
// 0600 too.
func relayScript(file string, parallel int, part string) string {
	return `command -v curl >/dev/null || { echo 'curl not found' >&2; exit 127; }
umask 077
D=$(mktemp -d) || exit 1
trap 'rm -rf "$D"' EXIT
trap 'exit 1' HUP INT TERM PIPE
cat > "$D/p" || exit 1
F=` + shquote.Quote(file) + `; export F D
cut -d' ' -f1-3 "$D/p" | xargs -P ` + strconv.Itoa(parallel) + ` -n 3 sh -c ` + shquote.Quote(part) + ` _`
}

// minRelayRate is the slowest pace a relayed copy is allowed when sizing the
// lifetime of its presigned URLs (bytes per second, per parallel curl).
const minRelayRate = 1 << 20

// presignExpiry is the lifetime of a presigned URL for the bytes of a copy
// up to offset end with parallel curls: 15 minutes plus the time those
// bytes take at minRelayRate per curl, at most 6 hours. A URL leaked from
// the instance is then of use only while the copy could still need it.
func presignExpiry(end int64, parallel int) time.Duration {
	d := 15*time.Minute + time.Duration(end/int64(max(parallel, 1))/minRelayRate)*time.Second
	return min(d, 6*time.Hour)
}

// runParts runs cmd on the instance with stdin, reading "N LEN ETAG" lines as parts finish.
func runParts(ctx context.Context, c *sshconn.Client, cmd, stdin, name string, o Options) ([]s3types.CompletedPart, error) {
	s, err := c.SSH.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	s.Stdin = strings.NewReader(stdin)
	out, err := s.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	if err := s.Start(cmd); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Signal("KILL"); s.Close() })
	defer stop()
	var parts []s3types.CompletedPart
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		num, _ := strconv.Atoi(f[0])
		ln, _ := strconv.ParseInt(f[1], 10, 64)
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(int32(num)), ETag: aws.String(f[2])})
		if o.Progress != nil {
			o.Progress.Add(name, ln)
		}
	}
	if err := s.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "curl not found") {
			return nil, exitcode.New(exitcode.RemoteIO, "install curl on the instance, or use --via tunnel", "the S3 relay needs curl on the instance")
		}
		return nil, exitcode.Wrap(fmt.Errorf("%w: %s", err, msg), exitcode.RemoteIO, "use --via tunnel if the instance cannot reach S3", "curl on the instance failed")
	}
	return parts, nil
}

// getRanges downloads key with parallel ranged GETs into f.
func getRanges(ctx context.Context, s3c *s3.Client, o Options, key string, size int64, f *os.File, name string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for off := int64(0); off < size; off += o.PartSize {
		end := min(off+o.PartSize, size) - 1
		g.Go(func() error {
			out, err := s3c.GetObject(gctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(key),
				Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
			if err != nil {
				return s3Err(err, "s3:GetObject")
			}
			defer out.Body.Close()
			w := &offsetWriter{f: f, off: off, add: func(n int64) {
				if o.Progress != nil {
					o.Progress.Add(name, n)
				}
			}}
			n, err := io.Copy(w, out.Body)
			if err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					return fsErr(err, "destination", f.Name(), "here", exitcode.LocalIO)
				}
				return fmt.Errorf("GET range %d-%d: %w", off, end, err)
			}
			if n != end-off+1 {
				return fmt.Errorf("GET range %d-%d: got %d bytes", off, end, n)
			}
			return nil
		})
	}
	return g.Wait()
}

type offsetWriter struct {
	f   *os.File
	off int64
	add func(int64)
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	w.add(int64(n))
	return n, err
}

// Upload copies src here to dst on the instance.
func Upload(ctx context.Context, cfg aws.Config, c *sshconn.Client, src, dst string, o Options) (transfer.Stats, error) {
	o.defaults()
	o.Progress = newTwoLegs(o.Progress)
	start := time.Now()
	st := transfer.Stats{Files: 1, Sessions: 1}
	fi, err := os.Stat(src)
	if err != nil {
		return st, fsErr(err, "source", src, "here", exitcode.LocalIO)
	}
	if fi.IsDir() {
		return st, exitcode.New(exitcode.Usage, "use --via tunnel -r for folders", "source %s is a directory (the S3 relay copies single files)", src)
	}
	if di, err := c.SFTP.Stat(dst); err == nil && di.IsDir() {
		dst = path.Join(dst, filepath.Base(src))
		if di, err := c.SFTP.Stat(dst); err == nil && di.IsDir() {
			return st, exitcode.New(exitcode.Usage, "name a file, or a directory to copy into", "destination %s is a directory", dst)
		}
	}
	size := fi.Size()
	st.Bytes = size
	name := filepath.Base(src)
	if o.Progress != nil {
		o.Progress.Total(1, 2*size, 0)
		o.Progress.FileStart(name, 2*size, 0)
	}
	localCh := make(chan result, 1)
	go func() {
		s, err := localSum(ctx, src)
		localCh <- result{s, err}
	}()
	s3c, pre := client(cfg)
	key := objectKey(o, name)
	partial := dst + transfer.PartialSuffix
	if err := c.CreatePrivate(ctx, partial); err != nil {
		return st, fsErr(err, "destination", partial, "on the instance", exitcode.RemoteIO)
	}
	if size > 0 {
		if err := putFromHere(ctx, s3c, src, size, key, name, o); err != nil {
			return st, err
		}
		if !o.Keep {
			defer deleteObject(s3c, o.Bucket, key)
		}
		req, err := pre.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(key)}, s3.WithPresignExpires(presignExpiry(size, o.Parallel)))
		if err != nil {
			return st, fmt.Errorf("presign GET: %w", err)
		}
		var lines strings.Builder
		i := 0
		for off := int64(0); off < size; off += o.PartSize {
			i++
			fmt.Fprintf(&lines, "%d %d %d %s\n", i, off, min(o.PartSize, size-off), req.URL)
		}
		// Each range into its own 0600 file (curl may retry), then into place.
		part := `n=$1; off=$2; len=$3; end=$((off+len-1))
` + urlConfig + ` | curl -sS -f --retry 3 -K - -r "$off-$end" -o "$F.$n" || { echo "part $n: download failed" >&2; rm -f "$F.$n"; exit 1; }
dd if="$F.$n" of="$F" bs=1M conv=notrunc oflag=seek_bytes seek="$off" 2>/dev/null || { echo "part $n: write failed" >&2; rm -f "$F.$n"; exit 1; }
rm -f "$F.$n"
echo "$n $len done"`
		cmd := relayScript(partial, o.Parallel, part)
		if _, err := runParts(ctx, c, cmd, lines.String(), name, o); err != nil {
			return st, err
		}
	}
	st.Moved = size
	remote, err := sum(ctx, c, partial)
	if err != nil {
		return st, exitcode.Wrap(err, exitcode.RemoteIO, "", "sha256sum of %s on the instance failed", partial)
	}
	l := <-localCh
	if l.err != nil {
		return st, fsErr(l.err, "source", src, "here", exitcode.LocalIO)
	}
	if l.sum != remote {
		return st, exitcode.New(exitcode.Checksum, "run the same command again", "sha256 of %s on the instance differs from %s's; partial file kept", partial, src)
	}
	c.SFTP.Chmod(partial, fi.Mode().Perm())
	c.SFTP.Chtimes(partial, fi.ModTime(), fi.ModTime())
	if err := c.SFTP.PosixRename(partial, dst); err != nil {
		return st, fsErr(err, "destination", dst, "on the instance", exitcode.RemoteIO)
	}
	if o.Progress != nil {
		o.Progress.FileDone(name)
	}
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

// putFromHere uploads src with a parallel multipart upload.
func putFromHere(ctx context.Context, s3c *s3.Client, src string, size int64, key, name string, o Options) error {
	f, err := os.Open(src)
	if err != nil {
		return fsErr(err, "source", src, "here", exitcode.LocalIO)
	}
	defer f.Close()
	cu, err := s3c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(o.Bucket), Key: aws.String(key)})
	if err != nil {
		return bucketErr(s3Err(err, "s3:CreateMultipartUpload"), o.Bucket)
	}
	n := (size + o.PartSize - 1) / o.PartSize
	parts := make([]s3types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for i := range n {
		g.Go(func() error {
			off := i * o.PartSize
			ln := min(o.PartSize, size-off)
			out, err := s3c.UploadPart(gctx, &s3.UploadPartInput{Bucket: aws.String(o.Bucket), Key: aws.String(key), UploadId: cu.UploadId,
				PartNumber: aws.Int32(int32(i + 1)), Body: io.NewSectionReader(f, off, ln), ContentLength: aws.Int64(ln)})
			if err != nil {
				return s3Err(err, "s3:UploadPart")
			}
			parts[i] = s3types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag}
			if o.Progress != nil {
				o.Progress.Add(name, ln)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		s3c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(o.Bucket), Key: aws.String(key), UploadId: cu.UploadId})
		cancel()
		return err
	}
	_, err = s3c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(o.Bucket), Key: aws.String(key),
		UploadId: cu.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return s3Err(err, "s3:CompleteMultipartUpload")
	}
	return nil
}

func deleteObject(s3c *s3.Client, bucket, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
}

func bucketErr(err error, bucket string) error {
	if strings.Contains(err.Error(), "NoSuchBucket") {
		return exitcode.Wrap(err, exitcode.NotFound, "create the bucket or pass another --bucket", "bucket %s does not exist", bucket)
	}
	return err
}

func sum(ctx context.Context, c *sshconn.Client, p string) (string, error) {
	out, err := c.Output(ctx, "sha256sum -- "+shquote.Quote(p), nil)
	if err != nil {
		return "", err
	}
	s := strings.TrimPrefix(string(out), "\\")
	if len(s) < 64 {
		return "", fmt.Errorf("unexpected sha256sum output %q", out)
	}
	return s[:64], nil
}

func localSum(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), ctx.Err()
}

func fsErr(err error, what, p, where string, class exitcode.Class) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return exitcode.Wrap(err, class, "check the path", "%s %s does not exist %s", what, p, where)
	case errors.Is(err, fs.ErrPermission):
		return exitcode.Wrap(err, class, "check the file's permissions and --user", "permission denied: %s %s %s", what, p, where)
	}
	return exitcode.Wrap(err, class, "", "%s %s %s", what, p, where)
}

var _ = sync.Mutex{}
