package sshconn

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/devgate/devgate/internal/awsapi"
	"github.com/devgate/devgate/internal/tunnel"
)

// DialN opens up to n connections to the target of topts: the first one
// resolves the target (starting it if needed) and pushes the key, the others
// follow in parallel to the instance id. It returns at least one client or
// the first error; sessions that fail after the first are dropped (the copy
// runs on fewer) and counted in the returned error slice.
func DialN(ctx context.Context, awsCfg aws.Config, topts tunnel.Options, c Config, n int) ([]*Client, []error, error) {
	if n < 1 {
		n = 1
	}
	if c.Lock == nil {
		c.Lock = &sync.Mutex{}
	}
	first, err := dialOne(ctx, awsCfg, topts, c)
	if err != nil {
		return nil, nil, err
	}
	clients := []*Client{first}
	c.Packet = first.Packet // the others need not ask the same sftp-server again
	topts.Target = first.InstanceID
	topts.Progress = nil
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range n - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := dialOne(ctx, awsCfg, topts, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			clients = append(clients, cl)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		for _, cl := range clients {
			cl.Close()
		}
		return nil, nil, ctx.Err()
	}
	return clients, errs, nil
}

func dialOne(ctx context.Context, awsCfg aws.Config, topts tunnel.Options, c Config) (*Client, error) {
	if topts.Port == 0 {
		topts.Port = 22
	}
	conn, err := tunnel.Dial(ctx, awsCfg, topts)
	if err != nil {
		return nil, err
	}
	cl, err := NewClient(ctx, conn, conn.InstanceID, c)
	var refused *AuthRefusedError
	if errors.As(err, &refused) && ctx.Err() == nil {
		// Which user the instance is meant for: the hint names it.
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		refused.ImageUser, refused.ImageWhy, _ = awsapi.ImageUser(lctx, awsCfg, conn.InstanceID)
		cancel()
		return nil, RefusedError(refused)
	}
	if err != nil {
		return nil, errors.Join(err)
	}
	cl.Path = conn.Path
	return cl, nil
}
