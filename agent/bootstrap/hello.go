package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/flashline/flashline/agent/protocol"
)

// Helloer is the part of the line server client AwaitJob needs (*lineclient.Client has it).
type Helloer interface {
	Hello(ctx context.Context, h protocol.Hello) (*protocol.HelloResponse, error)
}

// Backoff yields the waits between hellos (lineclient.Backoff fits).
type Backoff interface {
	Next() time.Duration
	Reset()
}

// Hello returns the hello this device sends: who it is, where it booted from and how long
// booting took. The inventory is filled in by the caller.
func (e *Env) Hello() protocol.Hello {
	h := protocol.Hello{AgentVersion: e.Version, Nonce: nonce(), Timings: e.Timings}
	if e.NIC.MAC != nil {
		h.BootMAC = e.NIC.MAC.String()
	}
	if e.NIC.IP.IP != nil {
		h.IP = e.NIC.IP.IP.String()
	}
	return h
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux >= 3.17
	return hex.EncodeToString(b)
}

// AwaitJob says hello to the line server until it answers with a job, telling the operator
// on the console why it waits: the server does not answer (retried with backoff), or it has no
// job for this device yet (retried when the server says). It returns only with a job or when
// ctx ends.
func AwaitJob(ctx context.Context, env *Env, api Helloer, h protocol.Hello, b Backoff, sleep func(context.Context, time.Duration) error) (*protocol.HelloResponse, error) {
	con := env.Console
	con.Infof("hello to %s", env.Server)
	for {
		resp, err := api.Hello(ctx, h)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("hello to %s: %w", env.Server, ctx.Err())
		}
		var wait time.Duration
		switch {
		case err != nil:
			wait = b.Next()
			con.Warnf("no answer from %s: %v; retrying in %s", env.Server, err, roundWait(wait))
		case resp.Job != nil:
			b.Reset()
			con.OKf("job received from %s (%d bytes, signed: %v)", env.Server, len(resp.Job.Job), len(resp.Job.Signature) > 0)
			return resp, nil
		default:
			b.Reset()
			wait = time.Duration(resp.RetryAfter) * time.Second
			if wait <= 0 {
				wait = b.Next()
			}
			msg := resp.Message
			if msg == "" {
				msg = "no job for this device yet"
			}
			con.Infof("%s says: %s; asking again in %s", env.Server, msg, roundWait(wait))
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("hello to %s: %w", env.Server, err)
		}
	}
}

func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
