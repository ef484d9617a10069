package transfer

import (
	"bufio"
	"bytes"
	"context"
	"strings"

	"github.com/devgate/devgate/internal/sshconn"
)

// maxBatch bounds the files of one batched sha256sum on the instance.
const maxBatch = 256

// hasher hashes small files on the instance in batches: one command for
// every request that arrived while the previous command ran, so that a
// folder of small files costs a few commands, not one per file.
type hasher struct {
	c    *sshconn.Client
	reqs chan hashReq
}

type hashReq struct {
	path  string
	reply chan sumResult
}

func newHasher(ctx context.Context, c *sshconn.Client) *hasher {
	h := &hasher{c: c, reqs: make(chan hashReq, maxBatch)}
	go h.run(ctx)
	return h
}

// sum returns the sha256 of p on the instance.
func (h *hasher) sum(ctx context.Context, p string) (string, error) {
	r := hashReq{path: p, reply: make(chan sumResult, 1)}
	select {
	case h.reqs <- r:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case res := <-r.reply:
		return res.sum, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (h *hasher) run(ctx context.Context) {
	for {
		var batch []hashReq
		select {
		case <-ctx.Done():
			return
		case r := <-h.reqs:
			batch = append(batch, r)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-h.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		h.do(ctx, batch)
	}
}

func (h *hasher) do(ctx context.Context, batch []hashReq) {
	var in bytes.Buffer
	for _, r := range batch {
		in.WriteString(r.path)
		in.WriteByte(0)
	}
	out, err := h.c.Output(ctx, "xargs -0 sha256sum --", in.Bytes())
	var sums []string
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimPrefix(sc.Text(), "\\")
			if len(line) >= 64 {
				sums = append(sums, line[:64])
			}
		}
	}
	if err != nil || len(sums) != len(batch) {
		// Something in the batch failed (a missing file, say): hash one by one for exact errors.
		for _, r := range batch {
			s, err := remoteSide{}.Sum(ctx, h.c, r.path)
			r.reply <- sumResult{s, err}
		}
		return
	}
	for i, r := range batch {
		r.reply <- sumResult{sums[i], nil}
	}
}
