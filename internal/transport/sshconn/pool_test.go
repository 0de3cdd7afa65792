package sshconn

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A task waiting for the connection another task is dialing (to a hung
// host) gives up at its own deadline, not at the dialing task's.
func TestPoolWaitHonoursDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	dialing := make(chan struct{})
	pool := NewPool(func(ctx context.Context, host string) (*Conn, error) {
		close(dialing)
		<-release
		return nil, errors.New("host hung")
	})
	defer pool.Close()
	first := make(chan error, 1)
	go func() {
		_, err := pool.Get(context.Background(), "h")
		first <- err
	}()
	<-dialing
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := pool.Get(ctx, "h")
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Get: %v, want its deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("second Get waits for the other task's dial past its deadline")
	}
	close(release)
	if err := <-first; err == nil {
		t.Error("first Get: want the dial's error")
	}
}
