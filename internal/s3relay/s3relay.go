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
// Options.Keep.
//
// It resumes: a journal in Options.JournalDir records the object, its
// multipart upload and the ranges already in the partial file, so that the
// same copy again after a kill -9 or a dropped connection asks S3 which
// parts it has (ListParts) and sends only the others, then fetches only the
// missing ranges; the sha256 check at the end is the same. An interrupted
// copy leaves its multipart upload or object in the bucket for the next run
// (a bucket lifecycle rule that aborts incomplete multipart uploads cleans
// up after copies never run again). Download and Upload copy one file;
// CopyTree copies a folder over one session (tree.go, stream.go). Listing a
// folder and making its directories and links are package transfer's.
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
	"github.com/aws/smithy-go"
	"golang.org/x/crypto/ssh"
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
	// JournalDir keeps the journals that make a relayed copy resumable ("":
	// not resumable).
	JournalDir string
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
		return st, exitcode.New(exitcode.Usage, "add -r to copy a directory", "source %s is a directory", src)
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
	j, resumed := openJournal(o.JournalDir, state{V: 1, Dir: "down", Src: c.InstanceID + ":" + src, Dst: dst, Size: size,
		MtimeNs: fi.ModTime().UnixNano(), PartSize: o.PartSize, Bucket: o.Bucket})
	partial := dst + transfer.PartialSuffix
	flags := os.O_WRONLY | os.O_CREATE
	if pi, err := os.Stat(partial); !resumed || err != nil || pi.Size() != size {
		flags |= os.O_TRUNC // a new copy, or the partial file is not the one journaled
		j.update(func(s *state) { s.Ranges = nil })
	}
	if j.get().Key == "" {
		j.update(func(s *state) { s.Key = objectKey(o, name) })
	}
	js := j.get()
	remoteSum := make(chan result, 1)
	go func() {
		s, err := sum(ctx, c, src)
		remoteSum <- result{s, err}
	}()
	s3c, pre := client(cfg)
	if o.Progress != nil {
		o.Progress.Total(1, 2*size, 0)
		o.Progress.FileStart(name, 2*size, 0)
	}
	if size > 0 && !js.Complete {
		if err := putFromInstance(ctx, s3c, pre, c, src, size, j, name, o); err != nil {
			return st, err
		}
	} else if o.Progress != nil {
		o.Progress.Add(name, size)
	}
	f, err := os.OpenFile(partial, flags, 0o600)
	if err == nil {
		err = f.Chmod(0o600) // a partial left by an older devgate
	}
	if err == nil {
		err = f.Truncate(size)
	}
	if err != nil {
		return st, fsErr(err, "destination", partial, "here", exitcode.LocalIO)
	}
	err = getRanges(ctx, s3c, o, j, size, f, name, &st)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fsErr(cerr, "destination", partial, "here", exitcode.LocalIO)
	}
	if err != nil {
		return st, err
	}
	local, err := localSum(ctx, partial)
	if err != nil {
		return st, fsErr(err, "destination", partial, "here", exitcode.LocalIO)
	}
	r := <-remoteSum
	if r.err != nil {
		return st, exitcode.Wrap(r.err, exitcode.RemoteIO, "", "sha256sum of %s on the instance failed", src)
	}
	if r.sum != local {
		j.remove() // the next run starts over
		return st, exitcode.New(exitcode.Checksum, "run the same command again", "sha256 of %s (%s) differs from the instance's (%s); partial file kept", partial, local[:12], r.sum[:12])
	}
	os.Chmod(partial, fi.Mode().Perm())
	os.Chtimes(partial, fi.ModTime(), fi.ModTime())
	if err := os.Rename(partial, dst); err != nil {
		return st, fsErr(err, "destination", dst, "here", exitcode.LocalIO)
	}
	j.remove()
	if !o.Keep && size > 0 {
		deleteObject(s3c, o.Bucket, j.get().Key)
	}
	if o.Progress != nil {
		o.Progress.FileDone(name)
	}
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

func partLen(n int32, size, partSize int64) int64 {
	off := int64(n-1) * partSize
	return max(0, min(partSize, size-off))
}

type result struct {
	sum string
	err error
}

// putFromInstance runs the multipart upload of src by curl on the instance,
// continuing the journaled upload (the parts S3 already has are not sent again).
func putFromInstance(ctx context.Context, s3c *s3.Client, pre *s3.PresignClient, c *sshconn.Client, src string, size int64, j *journal, name string, o Options) error {
	done, err := resumeUpload(ctx, s3c, j, o)
	if err != nil {
		return err
	}
	js := j.get()
	key, id := aws.String(js.Key), aws.String(js.UploadID)
	n := (size + o.PartSize - 1) / o.PartSize
	var lines strings.Builder
	for i := range n {
		off := i * o.PartSize
		ln := min(o.PartSize, size-off)
		if _, ok := done[int32(i+1)]; ok {
			if o.Progress != nil {
				o.Progress.Add(name, ln)
			}
			continue
		}
		req, err := pre.PresignUploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(o.Bucket), Key: key,
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
	if lines.Len() > 0 {
		err := runParts(ctx, c, cmd, lines.String(), name, o, func(num int32, ln int64, etag string) {
			done[num] = s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: aws.String(etag)}
		})
		if err != nil {
			return err
		}
	}
	return completeUpload(ctx, s3c, j, done, n, o)
}

// resumeUpload returns the parts S3 already holds of the journal's multipart
// upload (ListParts), or starts one (CreateMultipartUpload) when there is
// none or S3 no longer knows it (NoSuchUpload).
func resumeUpload(ctx context.Context, s3c *s3.Client, j *journal, o Options) (map[int32]s3types.CompletedPart, error) {
	js := j.get()
	return resumeMultipart(ctx, s3c, o.Bucket, js.Key, js.UploadID, js.Size, js.PartSize, func(id string) error {
		return j.update(func(s *state) { s.UploadID = id })
	})
}

// resumeMultipart is resumeUpload for the object key of size bytes in parts
// of partSize: uploadID is the journaled upload ("" for none) and setID
// journals a new one.
func resumeMultipart(ctx context.Context, s3c *s3.Client, bucket, key, uploadID string, size, partSize int64, setID func(string) error) (map[int32]s3types.CompletedPart, error) {
	done := map[int32]s3types.CompletedPart{}
	if uploadID != "" {
		p := s3.NewListPartsPaginator(s3c, &s3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(uploadID)})
		var err error
		for p.HasMorePages() {
			var page *s3.ListPartsOutput
			if page, err = p.NextPage(ctx); err != nil {
				break
			}
			for _, part := range page.Parts {
				if n := aws.ToInt32(part.PartNumber); aws.ToInt64(part.Size) == partLen(n, size, partSize) {
					done[n] = s3types.CompletedPart{PartNumber: part.PartNumber, ETag: part.ETag}
				}
			}
		}
		switch {
		case err == nil:
			return done, nil
		case noSuchUpload(err):
			done = map[int32]s3types.CompletedPart{} // gone (aborted, expired): start over
		default:
			return nil, s3Err(err, "s3:ListParts")
		}
	}
	cu, err := s3c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, bucketErr(s3Err(err, "s3:CreateMultipartUpload"), bucket)
	}
	if err := setID(aws.ToString(cu.UploadId)); err != nil {
		return nil, exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write the relay journal")
	}
	return done, nil
}

// noSuchUpload reports whether S3 answered that the multipart upload does
// not exist (aborted, expired, completed). ListParts models no errors in the
// SDK, so the answer is a generic API error with the code NoSuchUpload
// (S3 API Reference, ListParts and "Error responses"), not the typed one.
func noSuchUpload(err error) bool {
	var nsu *s3types.NoSuchUpload
	var ae smithy.APIError
	return errors.As(err, &nsu) || errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}

// completeUpload completes the multipart upload once all n parts are in.
func completeUpload(ctx context.Context, s3c *s3.Client, j *journal, done map[int32]s3types.CompletedPart, n int64, o Options) error {
	js := j.get()
	return completeMultipart(ctx, s3c, o.Bucket, js.Key, js.UploadID, done, n, func() error {
		return j.update(func(s *state) { s.Complete = true })
	})
}

// completeMultipart is completeUpload for the upload uploadID of key;
// setComplete journals that the object is whole.
func completeMultipart(ctx context.Context, s3c *s3.Client, bucket, key, uploadID string, done map[int32]s3types.CompletedPart, n int64, setComplete func() error) error {
	if int64(len(done)) != n {
		return exitcode.New(exitcode.RemoteIO, "run the same command again: it resumes", "%d of %d parts reached S3", len(done), n)
	}
	parts := make([]s3types.CompletedPart, 0, n)
	for _, p := range done {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, k int) bool { return *parts[i].PartNumber < *parts[k].PartNumber })
	_, err := s3c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: aws.String(uploadID), MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return s3Err(err, "s3:CompleteMultipartUpload")
	}
	if err := setComplete(); err != nil {
		return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write the relay journal")
	}
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

// runParts runs cmd on the instance with stdin, calling part for each
// "N LEN ETAG-or-done" line as parts finish.
func runParts(ctx context.Context, c *sshconn.Client, cmd, stdin, name string, o Options, part func(n int32, ln int64, f3 string)) error {
	s, err := c.SSH.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	s.Stdin = strings.NewReader(stdin)
	out, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	if err := s.Start(cmd); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.Signal("KILL"); s.Close() })
	defer stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		num, _ := strconv.Atoi(f[0])
		ln, _ := strconv.ParseInt(f[1], 10, 64)
		part(int32(num), ln, f[2])
		if o.Progress != nil {
			o.Progress.Add(name, ln)
		}
	}
	if err := s.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		var ee *ssh.ExitError
		if errors.As(err, &ee) && ee.ExitStatus() == 127 {
			return exitcode.New(exitcode.RemoteIO, "install curl on the instance, or use --via tunnel", "the S3 relay needs curl on the instance")
		}
		return exitcode.Wrap(fmt.Errorf("%w: %s", err, msg), exitcode.RemoteIO, "use --via tunnel if the instance cannot reach S3; run the same command again to resume", "curl on the instance failed")
	}
	return nil
}

// getRanges downloads the parts of the object the journal lacks with
// parallel ranged GETs into f, journaling each.
func getRanges(ctx context.Context, s3c *s3.Client, o Options, j *journal, size int64, f *os.File, name string, st *transfer.Stats) error {
	js := j.get()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	var smu sync.Mutex
	n := int32(0)
	for off := int64(0); off < size; off += o.PartSize {
		n++
		num := n
		end := min(off+o.PartSize, size) - 1
		if js.Ranges[num] {
			st.Resumed += end - off + 1
			if o.Progress != nil {
				o.Progress.Add(name, end-off+1)
			}
			continue
		}
		g.Go(func() error {
			out, err := s3c.GetObject(gctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(js.Key),
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
			got, err := io.Copy(w, out.Body)
			if err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					return fsErr(err, "destination", f.Name(), "here", exitcode.LocalIO)
				}
				return fmt.Errorf("GET range %d-%d: %w", off, end, err)
			}
			if got != end-off+1 {
				return fmt.Errorf("GET range %d-%d: got %d bytes", off, end, got)
			}
			smu.Lock()
			st.Moved += got
			smu.Unlock()
			if err := j.update(func(s *state) {
				if s.Ranges == nil {
					s.Ranges = map[int32]bool{}
				}
				s.Ranges[num] = true
			}); err != nil {
				return exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write the relay journal")
			}
			return nil
		})
	}
	err := g.Wait()
	var nsk *s3types.NoSuchKey
	if errors.As(err, &nsk) {
		j.remove() // the journaled object is gone (deleted, expired): the next run starts over
	}
	return err
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
		return st, exitcode.New(exitcode.Usage, "add -r to copy a directory", "source %s is a directory", src)
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
	j, resumed := openJournal(o.JournalDir, state{V: 1, Dir: "up", Src: src, Dst: c.InstanceID + ":" + dst, Size: size,
		MtimeNs: fi.ModTime().UnixNano(), PartSize: o.PartSize, Bucket: o.Bucket})
	partial := dst + transfer.PartialSuffix
	if _, err := c.SFTP.Stat(partial); !resumed || err != nil {
		// A new copy, or the journaled partial file is gone.
		if err := c.CreatePrivate(ctx, partial); err != nil {
			return st, fsErr(err, "destination", partial, "on the instance", exitcode.RemoteIO)
		}
		j.update(func(s *state) { s.Ranges = nil })
	} else if err := c.SFTP.Chmod(partial, 0o600); err != nil {
		return st, fsErr(err, "destination", partial, "on the instance", exitcode.RemoteIO)
	}
	if j.get().Key == "" {
		j.update(func(s *state) { s.Key = objectKey(o, name) })
	}
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
	if size > 0 {
		if !j.get().Complete {
			if err := putFromHere(ctx, s3c, src, size, j, name, o); err != nil {
				return st, err
			}
		} else if o.Progress != nil {
			o.Progress.Add(name, size)
		}
		js := j.get()
		req, err := pre.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(js.Key)}, s3.WithPresignExpires(presignExpiry(size, o.Parallel)))
		if err != nil {
			return st, fmt.Errorf("presign GET: %w", err)
		}
		var lines strings.Builder
		n := int32(0)
		for off := int64(0); off < size; off += o.PartSize {
			n++
			ln := min(o.PartSize, size-off)
			if js.Ranges[n] {
				st.Resumed += ln
				if o.Progress != nil {
					o.Progress.Add(name, ln)
				}
				continue
			}
			fmt.Fprintf(&lines, "%d %d %d %s\n", n, off, ln, req.URL)
		}
		// Each range into its own 0600 file (curl may retry), then into place.
		part := `n=$1; off=$2; len=$3; end=$((off+len-1))
` + urlConfig + ` | curl -sS -f --retry 3 -K - -r "$off-$end" -o "$F.$n" || { echo "part $n: download failed" >&2; rm -f "$F.$n"; exit 1; }
dd if="$F.$n" of="$F" bs=1M conv=notrunc oflag=seek_bytes seek="$off" 2>/dev/null || { echo "part $n: write failed" >&2; rm -f "$F.$n"; exit 1; }
rm -f "$F.$n"
echo "$n $len done"`
		cmd := relayScript(partial, o.Parallel, part)
		var jerr error
		if lines.Len() > 0 {
			err := runParts(ctx, c, cmd, lines.String(), name, o, func(num int32, ln int64, _ string) {
				st.Moved += ln
				if err := j.update(func(s *state) {
					if s.Ranges == nil {
						s.Ranges = map[int32]bool{}
					}
					s.Ranges[num] = true
				}); err != nil && jerr == nil {
					jerr = exitcode.Wrap(err, exitcode.LocalIO, "", "cannot write the relay journal")
				}
			})
			if err != nil {
				return st, err
			}
			if jerr != nil {
				return st, jerr
			}
		}
	}
	remote, err := sum(ctx, c, partial)
	if err != nil {
		return st, exitcode.Wrap(err, exitcode.RemoteIO, "", "sha256sum of %s on the instance failed", partial)
	}
	l := <-localCh
	if l.err != nil {
		return st, fsErr(l.err, "source", src, "here", exitcode.LocalIO)
	}
	if l.sum != remote {
		j.remove() // the next run starts over
		return st, exitcode.New(exitcode.Checksum, "run the same command again", "sha256 of %s on the instance differs from %s's; partial file kept", partial, src)
	}
	c.SFTP.Chmod(partial, fi.Mode().Perm())
	c.SFTP.Chtimes(partial, fi.ModTime(), fi.ModTime())
	if err := c.SFTP.PosixRename(partial, dst); err != nil {
		return st, fsErr(err, "destination", dst, "on the instance", exitcode.RemoteIO)
	}
	j.remove()
	if !o.Keep && size > 0 {
		deleteObject(s3c, o.Bucket, j.get().Key)
	}
	if o.Progress != nil {
		o.Progress.FileDone(name)
	}
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

// putFromHere uploads src with a parallel multipart upload, continuing the
// journaled one (the parts S3 already has are not sent again).
func putFromHere(ctx context.Context, s3c *s3.Client, src string, size int64, j *journal, name string, o Options) error {
	f, err := os.Open(src)
	if err != nil {
		return fsErr(err, "source", src, "here", exitcode.LocalIO)
	}
	defer f.Close()
	done, err := resumeUpload(ctx, s3c, j, o)
	if err != nil {
		return err
	}
	js := j.get()
	n := (size + o.PartSize - 1) / o.PartSize
	have := partsIn(done) // the parts goroutines below add to done are not looked up
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for i := range n {
		num := int32(i + 1)
		off := i * o.PartSize
		ln := min(o.PartSize, size-off)
		if have[num] {
			if o.Progress != nil {
				o.Progress.Add(name, ln)
			}
			continue
		}
		g.Go(func() error {
			out, err := s3c.UploadPart(gctx, &s3.UploadPartInput{Bucket: aws.String(o.Bucket), Key: aws.String(js.Key), UploadId: aws.String(js.UploadID),
				PartNumber: aws.Int32(num), Body: io.NewSectionReader(f, off, ln), ContentLength: aws.Int64(ln)})
			if err != nil {
				return s3Err(err, "s3:UploadPart")
			}
			mu.Lock()
			done[num] = s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag}
			mu.Unlock()
			if o.Progress != nil {
				o.Progress.Add(name, ln)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err // the upload stays for the next run
	}
	return completeUpload(ctx, s3c, j, done, n, o)
}

func deleteObject(s3c *s3.Client, bucket, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
}

// partsIn is the set of part numbers in done, taken before parts are
// uploaded concurrently into it.
func partsIn(done map[int32]s3types.CompletedPart) map[int32]bool {
	have := make(map[int32]bool, len(done))
	for n := range done {
		have[n] = true
	}
	return have
}

// bucketErr names the bucket when S3 says it does not exist (the NoSuchBucket
// error code: S3 API reference, Error responses).
func bucketErr(err error, bucket string) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
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
