package filelock

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestExclusiveAndShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	unlock, err := Lock(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := Lock(short, p, false); err == nil {
		t.Fatal("a shared lock was granted while an exclusive one is held")
	}
	unlock()
	r1, err := Lock(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Lock(ctx, p, false)
	if err != nil {
		t.Fatal("two shared locks should coexist:", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := Lock(short2, p, true); err == nil {
		t.Fatal("an exclusive lock was granted while shared ones are held")
	}
	r1()
	r2()
	if u, err := Lock(ctx, p, true); err != nil {
		t.Fatal(err)
	} else {
		u()
	}
}
