package labs3

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// disk serves S3's multipart upload calls, and the objects they make, from
// files in a directory, so that an object of many GiB (devgate cp's 10 GiB
// benchmark) costs disk, not memory: gofakes3 keeps every part in memory
// and joins them into one more copy at CompleteMultipartUpload. A part is
// one file; a completed object is its parts, read in place (no copy, so
// CompleteMultipartUpload takes as long as on S3, not a rewrite of the
// object). Everything else (single PUTs, listing, buckets) stays with
// gofakes3.
//
// Modelled from the S3 API Reference (CreateMultipartUpload, UploadPart,
// ListParts, CompleteMultipartUpload, AbortMultipartUpload, GetObject with
// Range, HeadObject, DeleteObject): ETag of a part = MD5 of its bytes, of the
// object = MD5 of the parts' MD5s + "-N"; NoSuchUpload (404) for an unknown
// upload id; InvalidPart (400) for a part not uploaded or an ETag that
// differs. Not modelled: the 5 MiB minimum part size, part listing pages.
type disk struct {
	dir     string
	bucket  func(name string) bool // the bucket exists
	mu      sync.Mutex
	uploads map[string]*upload  // upload id →
	objects map[string]*dobject // bucket + "/" + key →
}

type upload struct {
	bucket, key string
	parts       map[int]dpart
}

type dpart struct {
	path string
	size int64
	etag string // quoted
	mod  time.Time
}

type dobject struct {
	parts []dpart
	size  int64
	etag  string
	mod   time.Time
}

func newDisk(dir string) (*disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &disk{dir: dir, uploads: map[string]*upload{}, objects: map[string]*dobject{}}, nil
}

// serve handles r when it is a call disk answers; false leaves it to gofakes3.
func (d *disk) serve(w http.ResponseWriter, r *http.Request) bool {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || key == "" {
		return false
	}
	q := r.URL.Query()
	_, uploads := q["uploads"]
	id := q.Get("uploadId")
	switch {
	case r.Method == http.MethodPost && uploads:
		if !d.bucket(bucket) {
			s3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
			return true
		}
		d.create(w, bucket, key)
	case r.Method == http.MethodPut && id != "" && q.Get("partNumber") != "":
		d.putPart(w, r, id, q.Get("partNumber"))
	case r.Method == http.MethodGet && id != "":
		d.listParts(w, bucket, key, id)
	case r.Method == http.MethodPost && id != "":
		d.complete(w, r, bucket, key, id)
	case r.Method == http.MethodDelete && id != "":
		d.abort(w, id)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		d.mu.Lock()
		o := d.objects[bucket+"/"+key]
		d.mu.Unlock()
		if o == nil {
			return false
		}
		w.Header().Set("ETag", o.etag)
		w.Header().Set("Content-Type", "binary/octet-stream")
		rd := &partsReader{parts: o.parts}
		defer rd.Close()
		http.ServeContent(w, r, "", o.mod, io.NewSectionReader(rd, 0, o.size))
	case r.Method == http.MethodDelete:
		d.mu.Lock()
		o := d.objects[bucket+"/"+key]
		delete(d.objects, bucket+"/"+key)
		d.mu.Unlock()
		if o == nil {
			return false // perhaps gofakes3's
		}
		for _, p := range o.parts {
			os.Remove(p.path)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		return false
	}
	return true
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/xml")
	b, _ := xml.Marshal(v)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

func (d *disk) create(w http.ResponseWriter, bucket, key string) {
	var b [12]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	d.mu.Lock()
	d.uploads[id] = &upload{bucket: bucket, key: key, parts: map[int]dpart{}}
	d.mu.Unlock()
	writeXML(w, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Bucket   string
		Key      string
		UploadId string
	}{Bucket: bucket, Key: key, UploadId: id})
}

func (d *disk) putPart(w http.ResponseWriter, r *http.Request, id, num string) {
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 10000 {
		s3Error(w, http.StatusBadRequest, "InvalidArgument", "Part number must be an integer between 1 and 10000")
		return
	}
	d.mu.Lock()
	u := d.uploads[id]
	d.mu.Unlock()
	if u == nil {
		s3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	f, err := os.CreateTemp(d.dir, id+"."+num+".*")
	if err != nil {
		s3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	h := md5.New()
	size, err := io.Copy(io.MultiWriter(f, h), r.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || r.ContentLength >= 0 && size != r.ContentLength {
		os.Remove(f.Name())
		s3Error(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
		return
	}
	p := dpart{path: f.Name(), size: size, etag: `"` + hex.EncodeToString(h.Sum(nil)) + `"`, mod: time.Now().UTC()}
	d.mu.Lock()
	old, had := u.parts[n]
	if d.uploads[id] == nil { // aborted meanwhile
		d.mu.Unlock()
		os.Remove(p.path)
		s3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	u.parts[n] = p
	d.mu.Unlock()
	if had {
		os.Remove(old.path)
	}
	w.Header().Set("ETag", p.etag)
	w.WriteHeader(http.StatusOK)
}

type xmlPart struct {
	PartNumber   int
	ETag         string
	Size         int64  `xml:",omitempty"`
	LastModified string `xml:",omitempty"`
}

func (d *disk) listParts(w http.ResponseWriter, bucket, key, id string) {
	d.mu.Lock()
	u := d.uploads[id]
	var parts []xmlPart
	if u != nil {
		for n, p := range u.parts {
			parts = append(parts, xmlPart{PartNumber: n, ETag: p.etag, Size: p.size, LastModified: p.mod.Format(time.RFC3339)})
		}
	}
	d.mu.Unlock()
	if u == nil {
		s3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].PartNumber < parts[j].PartNumber })
	writeXML(w, struct {
		XMLName     xml.Name `xml:"ListPartsResult"`
		Bucket      string
		Key         string
		UploadId    string
		IsTruncated bool
		Part        []xmlPart
	}{Bucket: bucket, Key: key, UploadId: id, Part: parts})
}

func (d *disk) complete(w http.ResponseWriter, r *http.Request, bucket, key, id string) {
	var req struct {
		Part []xmlPart
	}
	if err := xml.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		s3Error(w, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed.")
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.uploads[id]
	if u == nil {
		s3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	o := &dobject{mod: time.Now().UTC()}
	sums := md5.New()
	used := map[int]bool{}
	for i, p := range req.Part {
		got, ok := u.parts[p.PartNumber]
		if !ok || got.etag != p.ETag && got.etag != `"`+strings.Trim(p.ETag, `"`)+`"` {
			s3Error(w, http.StatusBadRequest, "InvalidPart", "One or more of the specified parts could not be found.")
			return
		}
		if i > 0 && p.PartNumber <= req.Part[i-1].PartNumber {
			s3Error(w, http.StatusBadRequest, "InvalidPartOrder", "The list of parts was not in ascending order.")
			return
		}
		raw, _ := hex.DecodeString(strings.Trim(got.etag, `"`))
		sums.Write(raw)
		o.parts = append(o.parts, got)
		o.size += got.size
		used[p.PartNumber] = true
	}
	o.etag = fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sums.Sum(nil)), len(o.parts))
	for n, p := range u.parts {
		if !used[n] {
			os.Remove(p.path)
		}
	}
	delete(d.uploads, id)
	if old := d.objects[bucket+"/"+key]; old != nil {
		for _, p := range old.parts {
			os.Remove(p.path)
		}
	}
	d.objects[bucket+"/"+key] = o
	writeXML(w, struct {
		XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
		Bucket  string
		Key     string
		ETag    string
	}{Bucket: bucket, Key: key, ETag: o.etag})
}

func (d *disk) abort(w http.ResponseWriter, id string) {
	d.mu.Lock()
	u := d.uploads[id]
	delete(d.uploads, id)
	d.mu.Unlock()
	if u == nil {
		s3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	for _, p := range u.parts {
		os.Remove(p.path)
	}
	w.WriteHeader(http.StatusNoContent)
}

// keys lists the objects disk holds in bucket.
func (d *disk) keys(bucket string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k := range d.objects {
		if b, key, _ := strings.Cut(k, "/"); b == bucket {
			out = append(out, key)
		}
	}
	return out
}

// partsReader reads an object's part files as one (io.ReaderAt), opening
// each part when it is first read.
type partsReader struct {
	parts []dpart
	files map[int]*os.File
}

func (p *partsReader) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	start := int64(0)
	for i, part := range p.parts {
		if len(b) == 0 {
			break
		}
		end := start + part.size
		if off+int64(n) < end {
			if p.files == nil {
				p.files = map[int]*os.File{}
			}
			f := p.files[i]
			if f == nil {
				var err error
				if f, err = os.Open(part.path); err != nil {
					return n, err
				}
				p.files[i] = f
			}
			want := min(int64(len(b)), end-(off+int64(n)))
			m, err := f.ReadAt(b[:want], off+int64(n)-start)
			n += m
			b = b[m:]
			if err != nil && !(err == io.EOF && int64(m) == want) {
				return n, err
			}
		}
		start = end
	}
	if len(b) > 0 {
		return n, io.EOF
	}
	return n, nil
}

func (p *partsReader) Close() {
	for _, f := range p.files {
		f.Close()
	}
}

// cleanup removes every file disk made.
func (d *disk) cleanup() {
	os.RemoveAll(filepath.Clean(d.dir))
}
