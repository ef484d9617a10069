package s3relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/sshconn"
	"github.com/devgate/devgate/internal/transfer"
)

// maxRounds bounds the times a file is copied again because the copy's
// sha256 differed from the source's (the source changed during the copy).
const maxRounds = 3

// emptySum is the sha256 of no bytes.
const emptySum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// CopyTree copies the folder src to dst (cp -r --via s3) in direction dir
// through the bucket, over the one SSH connection c: the listing and the
// directories and links go over its SFTP channel as in the tunnel mode
// (transfer.PlanTree), and everything the instance does for the files runs
// in one command for the whole tree (see stream), up to o.Parallel jobs at
// a time, while this side makes up to o.Parallel S3 requests at a time.
// Files of at most o.PartSize bytes are single objects (one PUT, one GET);
// larger ones multipart uploads and ranged GETs, as Download and Upload do.
// Each file is verified (sha256) before it is renamed into place with its
// mode and mtime (sub-second where both sides keep it); its object is then
// deleted unless o.Keep.
//
// It resumes: files already at the destination (same size and mtime) are
// not copied again, and a journal in o.JournalDir records per file its
// multipart upload, whether its object is whole and the ranges already in
// its partial file. A src that is a file is copied by Download or Upload;
// follow copies what symbolic links point to.
func CopyTree(ctx context.Context, cfg aws.Config, c *sshconn.Client, dir transfer.Direction, src, dst string, follow bool, o Options) (transfer.Stats, error) {
	o.defaults()
	if isDir, err := sourceIsDir(c, dir, src); err != nil {
		return transfer.Stats{}, err
	} else if !isDir {
		if dir == transfer.Download {
			return Download(ctx, cfg, c, src, dst, o)
		}
		return Upload(ctx, cfg, c, src, dst, o)
	}
	start := time.Now()
	tree, err := transfer.PlanTree(ctx, c, transfer.Options{Direction: dir, Src: src, Dst: dst, FollowLinks: follow})
	if err != nil {
		return transfer.Stats{Sessions: 1}, err
	}
	// The journal is the copy's into tree.Root: the same command again after
	// the first run made dst goes into dst/<base> (as cp -r), a new copy.
	d := "down"
	jsrc, jdst := c.InstanceID+":"+src, tree.Root
	if dir == transfer.Upload {
		d, jsrc, jdst = "up", src, c.InstanceID+":"+tree.Root
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	j, _ := openTreeJournal(o.JournalDir, treeState{V: 1, Dir: d, Src: jsrc, Dst: jdst, PartSize: o.PartSize, Bucket: o.Bucket,
		Prefix: "devgate-cp/" + o.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:]) + "/"})
	s3c, pre := client(cfg)
	t := &treeCopy{o: o, dir: dir, c: c, j: j, s3c: s3c, pre: pre, s3sem: make(chan struct{}, o.Parallel), p: newTwoLegs(o.Progress)}
	t.stats.Sessions = 1
	err = t.run(ctx, tree)
	if err != nil {
		if jerr := j.close(); jerr != nil {
			err = errors.Join(err, exitcode.Wrap(jerr, exitcode.LocalIO, "", "cannot write the relay journal"))
		}
		t.stats.Seconds = time.Since(start).Seconds()
		return t.stats, err
	}
	links, err := tree.Finish(ctx)
	t.stats.Links = links
	if err != nil {
		j.close()
		return t.stats, err
	}
	j.remove()
	t.stats.Seconds = time.Since(start).Seconds()
	return t.stats, nil
}

func sourceIsDir(c *sshconn.Client, dir transfer.Direction, src string) (bool, error) {
	var fi fs.FileInfo
	var err error
	if dir == transfer.Download {
		fi, err = c.SFTP.Stat(src)
	} else {
		fi, err = os.Stat(src)
	}
	if err != nil {
		return false, transfer.FSError(err, dir == transfer.Download, "source", src)
	}
	return fi.IsDir(), nil
}

type treeCopy struct {
	o     Options
	dir   transfer.Direction
	c     *sshconn.Client
	j     *treeJournal
	s3c   *s3.Client
	pre   *s3.PresignClient
	st    *stream
	s3sem chan struct{} // bounds S3 requests made here
	p     transfer.Progress
	// queued counts the bytes whose URLs were presigned so far: a URL's
	// lifetime allows for the bytes ahead of it (presignExpiry).
	queued atomic.Int64

	smu   sync.Mutex
	stats transfer.Stats
}

func (t *treeCopy) addStats(f func(s *transfer.Stats)) {
	t.smu.Lock()
	f(&t.stats)
	t.smu.Unlock()
}

func (t *treeCopy) add(name string, n int64) {
	if t.p != nil && n != 0 {
		t.p.Add(name, n)
	}
}

// s3 runs an S3 request within the bound on parallel requests.
func (t *treeCopy) s3(ctx context.Context, f func() error) error {
	select {
	case t.s3sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.s3sem }()
	return f()
}

func (t *treeCopy) expiry(n int64) time.Duration {
	return presignExpiry(t.queued.Add(n), t.o.Parallel)
}

func (t *treeCopy) run(ctx context.Context, tree *transfer.Tree) error {
	var todo, stale []transfer.TreeFile
	var total, skipped int64
	for _, f := range tree.Files {
		total += f.Size
		if f.InPlace {
			skipped += f.Size
			if t.j.known(f.Rel) {
				// Put in place after an earlier run was killed (its jobs on
				// the instance went on): that run could not delete the object.
				stale = append(stale, f)
			}
			continue
		}
		todo = append(todo, f)
	}
	for _, f := range stale {
		t.finished(ctx, f, t.j.key(f.Rel))
	}
	t.stats.Files, t.stats.Bytes, t.stats.Skipped = len(tree.Files), total, len(tree.Files)-len(todo)
	if t.p != nil {
		t.p.Total(len(tree.Files), 2*total, 2*skipped)
	}
	if len(todo) == 0 {
		t.stats.Sessions = 0
		return nil
	}
	var err error
	if t.st, err = openStream(ctx, t.c, t.o.Parallel); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	// Files in flight: enough that the instance's jobs and this side's S3
	// requests overlap (small files), few enough that presigned URLs are
	// not made long before they are used.
	g.SetLimit(4 * t.o.Parallel)
	for _, f := range todo {
		g.Go(func() error {
			if t.dir == transfer.Download {
				return t.download(gctx, f)
			}
			return t.upload(gctx, f)
		})
	}
	err = g.Wait()
	if err != nil {
		t.st.sess.Close()
		<-t.st.done
		return err
	}
	return t.st.close()
}

// restart prepares file f for another round after a failed verification:
// the source as it is now, or an error once it kept changing.
func (t *treeCopy) restart(f *transfer.TreeFile, round int, moved int64) error {
	t.addStats(func(s *transfer.Stats) { s.Restarts++ })
	if round >= maxRounds {
		return exitcode.New(exitcode.Checksum, "copy it when it is no longer being written", "source %s kept changing during the copy (sha256 differed %d times)", f.Src, round)
	}
	t.add(f.Rel, -moved)
	var fi fs.FileInfo
	var err error
	if t.dir == transfer.Download {
		fi, err = t.c.SFTP.Stat(f.Src)
	} else {
		fi, err = os.Stat(f.Src)
	}
	if err != nil {
		return transfer.FSError(err, t.dir == transfer.Download, "source", f.Src)
	}
	f.Size, f.Mode, f.Mtime = fi.Size(), fi.Mode(), fi.ModTime()
	t.j.drop(f.Rel)
	return nil
}

func (t *treeCopy) parts(size int64) int64 { return (size + t.o.PartSize - 1) / t.o.PartSize }

// download copies one file of the tree from the instance to here.
func (t *treeCopy) download(ctx context.Context, f transfer.TreeFile) error {
	partial := f.Dst + transfer.PartialSuffix
	for round := 0; ; round++ {
		js := t.j.file(f.Rel, f.Size, f.Mtime)
		key := t.j.key(f.Rel)
		var moved int64 // both legs, for the progress
		done := int64(0)
		if js.Complete {
			done += f.Size
		}
		for n := range js.Ranges {
			done += partLen(n, f.Size, t.o.PartSize)
		}
		if t.p != nil {
			t.p.FileStart(f.Rel, 2*f.Size, done)
		}
		moved += done
		sum := js.Sum
		if f.Size > 0 && !js.Complete {
			s, err := t.putFromInstance(ctx, f, key, js.UploadID)
			if err != nil {
				return err
			}
			moved += f.Size
			if s != "" {
				sum = s
			}
			t.j.edit(f.Rel, func(x *fileState) { x.Complete, x.Sum = true, s })
		}
		sumCh := make(chan result, 1)
		switch {
		case f.Size == 0:
			sumCh <- result{emptySum, nil}
		case sum != "":
			sumCh <- result{sum, nil}
		default:
			go func() {
				r, err := t.st.do(ctx, "", "sum", f.Src)
				if err != nil {
					sumCh <- result{"", t.jobErr(err, f.Src)}
					return
				}
				sumCh <- result{r[1], nil}
				t.j.edit(f.Rel, func(x *fileState) { x.Sum = r[1] })
			}()
		}
		flags := os.O_WRONLY | os.O_CREATE
		if pi, err := os.Stat(partial); len(js.Ranges) == 0 || err != nil || pi.Size() != f.Size {
			flags |= os.O_TRUNC
			js.Ranges = map[int32]bool{}
			t.j.edit(f.Rel, func(x *fileState) { x.Ranges = nil })
		} else {
			for n := range js.Ranges {
				t.addStats(func(s *transfer.Stats) { s.Resumed += partLen(n, f.Size, t.o.PartSize) })
			}
		}
		out, err := os.OpenFile(partial, flags, 0o600)
		if err == nil {
			err = out.Chmod(0o600)
		}
		if err == nil {
			err = out.Truncate(f.Size)
		}
		if err != nil {
			if out != nil {
				out.Close()
			}
			return fsErr(err, "destination", partial, "here", exitcode.LocalIO)
		}
		n, err := t.getRanges(ctx, f, key, js.Ranges, out)
		moved += n
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fsErr(cerr, "destination", partial, "here", exitcode.LocalIO)
		}
		if err != nil {
			return err
		}
		local, err := localSum(ctx, partial)
		if err != nil {
			return fsErr(err, "destination", partial, "here", exitcode.LocalIO)
		}
		r := <-sumCh
		if r.err != nil {
			return r.err
		}
		if r.sum != local {
			if err := t.restart(&f, round+1, moved); err != nil {
				return err
			}
			continue
		}
		if err := os.Chmod(partial, f.Mode.Perm()); err != nil {
			return fsErr(err, "destination", partial, "here", exitcode.LocalIO)
		}
		os.Chtimes(partial, f.Mtime, f.Mtime)
		if di, err := os.Stat(f.Dst); err == nil && di.IsDir() {
			return exitcode.New(exitcode.Usage, "name a file, or a directory to copy into", "destination %s is a directory here", f.Dst)
		}
		if err := os.Rename(partial, f.Dst); err != nil {
			return fsErr(err, "destination", f.Dst, "here", exitcode.LocalIO)
		}
		t.finished(ctx, f, key)
		return nil
	}
}

// finished forgets a file that is in place and deletes its object.
func (t *treeCopy) finished(ctx context.Context, f transfer.TreeFile, key string) {
	t.forget(ctx, f, key)
	if t.p != nil {
		t.p.FileDone(f.Rel)
	}
}

// forget drops a file in place from the journal and deletes its object.
// The object goes first: a run killed before the journal forgets the file
// leaves it known, and the next run deletes the object (run's stale files);
// the other way round the object would be left to the bucket's lifecycle rule.
func (t *treeCopy) forget(ctx context.Context, f transfer.TreeFile, key string) {
	if !t.o.Keep && f.Size > 0 {
		t.s3(ctx, func() error { deleteObject(t.s3c, t.o.Bucket, key); return nil })
	}
	t.j.drop(f.Rel)
}

// jobErr classifies the failure of a job on the instance about path p.
func (t *treeCopy) jobErr(err error, p string) error {
	var je *jobError
	if errors.As(err, &je) {
		return exitcode.New(exitcode.RemoteIO, "run the same command again: it resumes; use --via tunnel if the instance cannot reach S3", "on the instance: %s", je.msg)
	}
	return err
}

// putFromInstance makes the object key from the file f on the instance:
// one PUT for a single part (answering the file's sha256), else the parts
// of a multipart upload S3 does not hold yet. It returns the sha256 when it
// is known.
func (t *treeCopy) putFromInstance(ctx context.Context, f transfer.TreeFile, key, uploadID string) (string, error) {
	if f.Size <= t.o.PartSize {
		req, err := t.pre.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.o.Bucket), Key: aws.String(key)},
			s3.WithPresignExpires(t.expiry(f.Size)))
		if err != nil {
			return "", fmt.Errorf("presign PUT: %w", err)
		}
		r, err := t.st.do(ctx, req.URL, "put", f.Src)
		if err != nil {
			return "", t.jobErr(err, f.Src)
		}
		t.add(f.Rel, f.Size)
		return r[1], nil
	}
	var done map[int32]s3types.CompletedPart
	err := t.s3(ctx, func() (err error) {
		done, err = resumeMultipart(ctx, t.s3c, t.o.Bucket, key, uploadID, f.Size, t.o.PartSize, func(id string) error {
			uploadID = id
			t.j.edit(f.Rel, func(x *fileState) { x.UploadID = id })
			return nil
		})
		return err
	})
	if err != nil {
		return "", err
	}
	n := t.parts(f.Size)
	have := partsIn(done) // the parts goroutines below add to done are not looked up
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		num := int32(i + 1)
		off, ln := i*t.o.PartSize, partLen(num, f.Size, t.o.PartSize)
		if have[num] {
			t.add(f.Rel, ln)
			continue
		}
		req, err := t.pre.PresignUploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(t.o.Bucket), Key: aws.String(key),
			UploadId: aws.String(uploadID), PartNumber: aws.Int32(num)}, s3.WithPresignExpires(t.expiry(ln)))
		if err != nil {
			return "", fmt.Errorf("presign part %d: %w", num, err)
		}
		g.Go(func() error {
			r, err := t.st.do(gctx, req.URL, "part", f.Src, strconv.Itoa(int(num)), strconv.FormatInt(off, 10), strconv.FormatInt(ln, 10))
			if err != nil {
				return t.jobErr(err, f.Src)
			}
			mu.Lock()
			done[num] = s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: aws.String(r[1])}
			mu.Unlock()
			t.add(f.Rel, ln)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	err = t.s3(ctx, func() error {
		return completeMultipart(ctx, t.s3c, t.o.Bucket, key, uploadID, done, n, func() error { return nil })
	})
	return "", err
}

// getRanges fetches the parts of object key that are not in out yet
// (parallel ranged GETs here), journaling each; it returns the bytes moved.
func (t *treeCopy) getRanges(ctx context.Context, f transfer.TreeFile, key string, have map[int32]bool, out *os.File) (int64, error) {
	g, gctx := errgroup.WithContext(ctx)
	var moved atomic.Int64
	for i := range t.parts(f.Size) {
		num := int32(i + 1)
		off, ln := i*t.o.PartSize, partLen(num, f.Size, t.o.PartSize)
		if have[num] {
			continue
		}
		g.Go(func() error {
			return t.s3(gctx, func() error {
				in := &s3.GetObjectInput{Bucket: aws.String(t.o.Bucket), Key: aws.String(key)}
				if ln != f.Size {
					in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+ln-1))
				}
				resp, err := t.s3c.GetObject(gctx, in)
				if err != nil {
					var nsk *s3types.NoSuchKey
					if errors.As(err, &nsk) {
						t.j.drop(f.Rel) // the object is gone (deleted, expired): the next run starts this file over
					}
					return s3Err(err, "s3:GetObject")
				}
				defer resp.Body.Close()
				w := &offsetWriter{f: out, off: off, add: func(n int64) { moved.Add(n); t.add(f.Rel, n) }}
				got, err := io.Copy(w, resp.Body)
				if err != nil {
					var pe *fs.PathError
					if errors.As(err, &pe) {
						return fsErr(err, "destination", out.Name(), "here", exitcode.LocalIO)
					}
					return fmt.Errorf("GET bytes %d-%d of %s: %w", off, off+ln-1, key, err)
				}
				if got != ln {
					return fmt.Errorf("GET bytes %d-%d of %s: got %d bytes", off, off+ln-1, key, got)
				}
				t.addStats(func(s *transfer.Stats) { s.Moved += got })
				t.j.rangeDone(f.Rel, num)
				return nil
			})
		})
	}
	err := g.Wait()
	return moved.Load(), err
}

// upload copies one file of the tree from here to the instance.
func (t *treeCopy) upload(ctx context.Context, f transfer.TreeFile) error {
	partial := f.Dst + transfer.PartialSuffix
	for round := 0; ; round++ {
		js := t.j.file(f.Rel, f.Size, f.Mtime)
		key := t.j.key(f.Rel)
		done := int64(0)
		if js.Complete {
			done += f.Size
		}
		for n := range js.Ranges {
			done += partLen(n, f.Size, t.o.PartSize)
			t.addStats(func(s *transfer.Stats) { s.Resumed += partLen(n, f.Size, t.o.PartSize) })
		}
		if t.p != nil {
			t.p.FileStart(f.Rel, 2*f.Size, done)
		}
		moved := done
		if f.Size > 0 && !js.Complete {
			if err := t.putFromHere(ctx, f, key, js.UploadID); err != nil {
				return err
			}
			moved += f.Size
			t.j.edit(f.Rel, func(x *fileState) { x.Complete = true })
		}
		// The source's sha256 once its object is made: a change during the
		// upload makes it differ from the object's, and the file starts over.
		localCh := make(chan result, 1)
		go func() {
			s, err := localSum(ctx, f.Src)
			localCh <- result{s, err}
		}()
		if f.Size > 0 {
			req, err := t.pre.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.o.Bucket), Key: aws.String(key)},
				s3.WithPresignExpires(t.expiry(f.Size)))
			if err != nil {
				return fmt.Errorf("presign GET: %w", err)
			}
			g, gctx := errgroup.WithContext(ctx)
			for i := range t.parts(f.Size) {
				num := int32(i + 1)
				off, ln := i*t.o.PartSize, partLen(num, f.Size, t.o.PartSize)
				if js.Ranges[num] {
					continue
				}
				g.Go(func() error {
					if _, err := t.st.do(gctx, req.URL, "get", partial, strconv.FormatInt(off, 10), strconv.FormatInt(ln, 10)); err != nil {
						return t.jobErr(err, partial)
					}
					t.add(f.Rel, ln)
					t.addStats(func(s *transfer.Stats) { s.Moved += ln })
					t.j.rangeDone(f.Rel, num)
					return nil
				})
			}
			err = g.Wait()
			if err != nil {
				return err
			}
		}
		l := <-localCh
		if l.err != nil {
			return fsErr(l.err, "source", f.Src, "here", exitcode.LocalIO)
		}
		mt := fmt.Sprintf("%d.%09d", f.Mtime.Unix(), f.Mtime.Nanosecond())
		r, err := t.st.do(ctx, "", "fin", partial, strconv.FormatInt(f.Size, 10), fmt.Sprintf("%o", f.Mode.Perm()), mt, l.sum, encodePath(f.Dst))
		if err != nil {
			return t.jobErr(err, partial)
		}
		switch r[0] {
		case "ok":
			t.finished(ctx, f, key)
			return nil
		case "isdir":
			return exitcode.New(exitcode.Usage, "name a file, or a directory to copy into", "destination %s is a directory on the instance", f.Dst)
		}
		if err := t.restart(&f, round+1, moved); err != nil {
			return err
		}
	}
}

// putFromHere makes the object key from the local file f: one PutObject
// for a single part, else the parts of a multipart upload S3 does not hold yet.
func (t *treeCopy) putFromHere(ctx context.Context, f transfer.TreeFile, key, uploadID string) error {
	file, err := os.Open(f.Src)
	if err != nil {
		return fsErr(err, "source", f.Src, "here", exitcode.LocalIO)
	}
	defer file.Close()
	if f.Size <= t.o.PartSize {
		err := t.s3(ctx, func() error {
			_, err := t.s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.o.Bucket), Key: aws.String(key),
				Body: io.NewSectionReader(file, 0, f.Size), ContentLength: aws.Int64(f.Size)})
			return err
		})
		if err != nil {
			return bucketErr(s3Err(err, "s3:PutObject"), t.o.Bucket)
		}
		t.add(f.Rel, f.Size)
		return nil
	}
	var done map[int32]s3types.CompletedPart
	err = t.s3(ctx, func() (err error) {
		done, err = resumeMultipart(ctx, t.s3c, t.o.Bucket, key, uploadID, f.Size, t.o.PartSize, func(id string) error {
			uploadID = id
			t.j.edit(f.Rel, func(x *fileState) { x.UploadID = id })
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	n := t.parts(f.Size)
	have := partsIn(done) // the parts goroutines below add to done are not looked up
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		num := int32(i + 1)
		off, ln := i*t.o.PartSize, partLen(num, f.Size, t.o.PartSize)
		if have[num] {
			t.add(f.Rel, ln)
			continue
		}
		g.Go(func() error {
			return t.s3(gctx, func() error {
				out, err := t.s3c.UploadPart(gctx, &s3.UploadPartInput{Bucket: aws.String(t.o.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
					PartNumber: aws.Int32(num), Body: io.NewSectionReader(file, off, ln), ContentLength: aws.Int64(ln)})
				if err != nil {
					return s3Err(err, "s3:UploadPart")
				}
				mu.Lock()
				done[num] = s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag}
				mu.Unlock()
				t.add(f.Rel, ln)
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return t.s3(ctx, func() error {
		return completeMultipart(ctx, t.s3c, t.o.Bucket, key, uploadID, done, n, func() error { return nil })
	})
}
