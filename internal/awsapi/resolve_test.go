package awsapi_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/exitcode"
	"github.com/devgate/devgate/internal/lab"
	"github.com/devgate/devgate/internal/lab/labtest"
)

func TestResolve(t *testing.T) {
	specs := []lab.InstanceSpec{{Name: "gpu1", State: "running"}, {Name: "gpu2", State: "stopped"},
		{Name: "twin", State: "running"}, {Name: "twin", State: "running"},
		{Name: "mixed", State: "running"}, {Name: "mixed", State: "terminated"}}
	l := labtest.Start(t, lab.Options{Instances: specs})
	cfg := l.AWSConfig()
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "targets.json")
	now := time.Now()
	o := awsapi.ResolveOptions{Prefix: "devbox", CacheFile: cache, Now: func() time.Time { return now }}
	gpu1, _ := l.Instance("gpu1")

	if tg, err := awsapi.Resolve(ctx, cfg, gpu1.ID, o); err != nil || tg.ID != gpu1.ID || l.Calls("DescribeInstances") != 0 {
		t.Fatalf("an id needs no call: %+v %v (calls %d)", tg, err, l.Calls("DescribeInstances"))
	}
	tg, err := awsapi.Resolve(ctx, cfg, "devbox-gpu1", o)
	if err != nil || tg.ID != gpu1.ID || tg.State != "running" || tg.Cached {
		t.Fatalf("devbox-gpu1: %+v %v", tg, err)
	}
	calls := l.Calls("DescribeInstances")
	if tg, err := awsapi.Resolve(ctx, cfg, "devbox-gpu1", o); err != nil || !tg.Cached || l.Calls("DescribeInstances") != calls {
		t.Fatalf("second resolve within the TTL should come from the cache: %+v %v", tg, err)
	}
	now = now.Add(awsapi.CacheTTL + time.Second)
	if tg, err := awsapi.Resolve(ctx, cfg, "devbox-gpu1", o); err != nil || tg.Cached {
		t.Fatalf("after the TTL the cache must not answer: %+v %v", tg, err)
	}
	// An entry dated in the future (the clock was set back) is not trusted.
	now = now.Add(-time.Hour)
	if tg, err := awsapi.Resolve(ctx, cfg, "devbox-gpu1", o); err != nil || tg.Cached {
		t.Fatalf("an entry dated in the future answered: %+v %v", tg, err)
	}
	now = now.Add(time.Hour)
	_, err = awsapi.Resolve(ctx, cfg, "twin", o)
	if exitcode.Code(err) != int(exitcode.NotFound) || strings.Count(err.Error(), "i-") != 2 {
		t.Fatalf("two running twins: %v, want an error listing both ids", err)
	}
	mixed, err := awsapi.Resolve(ctx, cfg, "mixed", o)
	if err != nil || mixed.State != "running" {
		t.Fatalf("a terminated namesake must not shadow the running one: %+v %v", mixed, err)
	}
	if _, err := awsapi.Resolve(ctx, cfg, "nope", o); exitcode.Code(err) != int(exitcode.NotFound) {
		t.Fatalf("nope: %v", err)
	}
	o.Aliases = map[string]string{"box": gpu1.ID}
	if tg, err := awsapi.Resolve(ctx, cfg, "box", o); err != nil || tg.ID != gpu1.ID {
		t.Fatalf("alias: %+v %v", tg, err)
	}

	// Private addresses, through DescribeInstances' filters.
	gpu2, _ := l.Instance("gpu2")
	for _, addr := range []string{gpu2.PrivateIP, "ip-" + strings.ReplaceAll(gpu2.PrivateIP, ".", "-") + ".ec2.internal"} {
		tg, err := awsapi.Resolve(ctx, cfg, addr, o)
		if err != nil || tg.ID != gpu2.ID || tg.State != "stopped" {
			t.Fatalf("%s: %+v %v, want %s", addr, tg, err, gpu2.ID)
		}
	}
	if _, err := awsapi.Resolve(ctx, cfg, "10.9.9.9", o); exitcode.Code(err) != int(exitcode.NotFound) {
		t.Fatalf("unknown address: %v", err)
	}
	// An alias that follows a Name tag; a cached id is forgotten on request.
	o.Names = map[string]string{"devbox-mine": "mixed"}
	if tg, err := awsapi.Resolve(ctx, cfg, "devbox-mine", o); err != nil || tg.ID != mixed.ID {
		t.Fatalf("named alias: %+v %v", tg, err)
	}
	awsapi.Forget(cache, "devbox-mine", now)
	calls = l.Calls("DescribeInstances")
	if tg, err := awsapi.Resolve(ctx, cfg, "devbox-mine", o); err != nil || tg.Cached || l.Calls("DescribeInstances") == calls {
		t.Fatalf("after Forget the cache must not answer: %+v %v", tg, err)
	}
}
