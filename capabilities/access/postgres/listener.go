package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// notifyChannel is the channel the triggers of migration 00002 notify on
// every change of a key, a principal or its roles.
const notifyChannel = "plinth_access_changed"

// Timing of the listener.
const (
	// listenRetryMin and listenRetryMax bound the wait between attempts to
	// listen again, doubling from the first to the second: the cache is
	// off meanwhile, so the first retry comes soon, and a database that is
	// down is not asked more than every few seconds.
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
	// listenCheckEvery is how long the listener waits for a notification
	// before it pings its connection, and listenCheckTimeout how long the
	// ping may take. A connection that died without a word (a network
	// partition, a failover) otherwise looks like a quiet one until TCP
	// gives up on it, minutes later, and all that time the cache would be
	// on with only keyCacheTTL to bound it.
	listenCheckEvery   = 2 * time.Second
	listenCheckTimeout = 2 * time.Second
	// listenCloseTimeout bounds the goodbye to the server of a connection
	// the listener gives up.
	listenCloseTimeout = 5 * time.Second
)

// startListener starts the listener, the first time it is called, unless
// the Store is closed. LookupKey calls it: a Store that never looks a key
// up never holds a connection for nothing.
func (s *Store) startListener() {
	s.listenStart.Do(func() {
		s.listenMu.Lock()
		defer s.listenMu.Unlock()
		if s.closed {
			return
		}
		s.listenDone = make(chan struct{})
		go s.listen(s.listenCtx, s.listenDone)
	})
}

// Close stops the listener, closes its connection and waits for both. The
// Store still works after Close, without its cache. Closing twice is
// harmless. The pool is not closed: it is not the Store's.
func (s *Store) Close() error {
	s.listenMu.Lock()
	s.closed = true
	done := s.listenDone
	s.listenMu.Unlock()
	s.stopListening()
	if done != nil {
		<-done
	}
	return nil
}

// listen keeps a connection LISTENing on notifyChannel until ctx ends,
// connecting again after a retry wait whenever it loses it. The cache is
// on only while a connection listens.
func (s *Store) listen(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	retry := listenRetryMin
	lost := false // said so in the log, and not yet that it is back
	for {
		err := s.listenOnce(ctx, func() {
			retry = listenRetryMin
			if lost {
				s.log.Info("access/postgres: listening for changes of keys and principals again; the key cache is back on")
				lost = false
			}
		})
		if ctx.Err() != nil {
			return
		}
		if !lost {
			// err names no key: only the connection's failure.
			s.log.Warn("access/postgres: not listening for changes of keys and principals; the key cache is off, every authentication reads the database until it is back",
				"error", err.Error())
			lost = true
		}
		if !s.sleep(ctx, retry) {
			return
		}
		retry = min(2*retry, listenRetryMax)
	}
}

// listenOnce takes a connection out of the pool, LISTENs on it, calls
// listening and then empties the cache on every notification, until the
// connection fails or ctx ends. The cache is on from LISTEN to return.
//
// The connection is hijacked: it leaves the pool for good, so it holds
// none of the pool's slots (the pool opens another in its place), yet it
// was opened as the pool opens them, with its credentials and hooks.
func (s *Store) listenOnce(ctx context.Context, listening func()) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", err)
	}
	conn := pc.Hijack()
	defer func() {
		// Off first: from now on nobody tells the cache what changes.
		s.cache.setListening(false)
		s.listenerPID.Store(0)
		closeCtx, cancel := context.WithTimeout(context.Background(), listenCloseTimeout)
		defer cancel()
		_ = conn.Close(closeCtx) // the connection is given up either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// LISTEN has committed: every change committed from now on is
	// notified. Whatever committed before is read by lookups that start
	// after this, which setListening makes sure of by emptying the cache.
	s.cache.setListening(true)
	s.listenerPID.Store(conn.PgConn().PID())
	listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenCheckEvery)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			s.notified()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet for a while: make sure the connection is alive. A
			// wait that times out leaves it usable (pgconn).
			pingCtx, cancel := context.WithTimeout(ctx, listenCheckTimeout)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping the listening connection: %w", err)
			}
		default:
			return fmt.Errorf("wait for notifications: %w", err)
		}
	}
}

// sleepCtx waits for d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
