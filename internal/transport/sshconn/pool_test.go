package sshconn

import (
	"context"
	"errors"
	"sync"
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

// A task that comes while a warm-up dial runs waits for it and gets its
// error without dialing again; one that comes after the failed warm-up
// dials again (the host may be up by then).
func TestPoolWarmFailedDial(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var dials []string
	var mu sync.Mutex
	pool := NewPool(func(ctx context.Context, host string) (*Conn, error) {
		mu.Lock()
		n := len(dials)
		dials = append(dials, host)
		mu.Unlock()
		if n == 0 {
			<-release
			return nil, errors.New("warm-up: host down")
		}
		return nil, errors.New("later: host down")
	})
	defer pool.Close()
	waits := make(chan struct{}, 2)
	pool.waits = func(string) { waits <- struct{}{} }
	pool.Warm(context.Background(), "h")
	waiting := make(chan error, 1)
	go func() {
		_, err := pool.Get(context.Background(), "h")
		waiting <- err
	}()
	<-waits // the Get has seen the warm-up under way
	close(release)
	if err := <-waiting; err == nil || err.Error() != "warm-up: host down" {
		t.Errorf("Get during the warm-up dial: %v, want the warm-up's error", err)
	}
	if _, err := pool.Get(context.Background(), "h"); err == nil || err.Error() != "later: host down" {
		t.Errorf("Get after the failed warm-up: %v, want a dial of its own", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dials) != 2 {
		t.Errorf("%d dials, want 2 (the warm-up's and the later Get's)", len(dials))
	}
}

// Close does not wait for a warm-up dial to a hung host: it stops it.
func TestPoolCloseStopsWarm(t *testing.T) {
	t.Parallel()
	stopped := make(chan struct{})
	pool := NewPool(func(ctx context.Context, host string) (*Conn, error) {
		<-ctx.Done()
		close(stopped)
		return nil, ctx.Err()
	})
	pool.Warm(context.Background(), "hung")
	closed := make(chan struct{})
	go func() {
		pool.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for the warm-up dial of a hung host")
	}
	select {
	case <-stopped:
	default:
		t.Error("the warm-up dial's context was not cancelled by Close")
	}
}
