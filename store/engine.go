package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files of the embedded engine inside the data dir.
const (
	lockFile   = "engine.lock" // held (flock) by the process that runs the engine
	addrFile   = "engine.addr" // the Unix socket path of the running engine
	sqliteDir  = "db"          // one SQLite file per database
	socketName = "mongo.sock"
	// maxSocketPath keeps the socket path under the 108-byte limit of
	// sockaddr_un, with room for the terminating NUL.
	maxSocketPath = 100
)

// ErrEngineBusy means another process holds the data dir's engine lock but
// its engine does not answer.
var ErrEngineBusy = errors.New("embedded engine: data dir is locked by another process that does not answer")

// Engine is the embedded MongoDB-compatible engine: FerretDB on SQLite files
// under a data dir, listening on a Unix socket. Exactly one process runs the
// engine of a data dir (it holds an exclusive lock on engine.lock); other
// processes attach to its socket.
type Engine struct {
	socket string
	dir    string // the data dir
	owner  bool   // this process runs the engine

	lock   *os.File
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// StartEngine runs the engine on dataDir, or attaches to the one another
// process of this machine already runs there.
func StartEngine(ctx context.Context, dataDir string, logger *slog.Logger) (*Engine, error) {
	if dataDir == "" {
		return nil, errors.New("embedded engine: no data dir")
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded engine: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, sqliteDir), 0o700); err != nil {
		return nil, fmt.Errorf("embedded engine: create data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(abs, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded engine: open lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return attach(ctx, abs)
		}
		return nil, fmt.Errorf("embedded engine: lock data dir: %w", err)
	}
	e, err := run(ctx, abs, lock, logger)
	if err != nil {
		syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
		return nil, err
	}
	return e, nil
}

// socketPath picks the socket's path: in the data dir when that is short
// enough, else a short path in the temp dir named after the data dir.
func socketPath(dataDir string) string {
	p := filepath.Join(dataDir, socketName)
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "sb-"+hex.EncodeToString(sum[:6])+".sock")
}

// attach connects to the engine another process runs on dataDir. That
// process may still be starting, so it waits a little for the socket.
func attach(ctx context.Context, dataDir string) (*Engine, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dataDir, addrFile))
		if err == nil {
			sock := strings.TrimSpace(string(b))
			if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
				c.Close()
				return &Engine{socket: sock, dir: dataDir}, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, ErrEngineBusy
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitForSocket(ctx context.Context, sock string, done <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("embedded engine stopped while starting: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("embedded engine: socket did not come up")
		}
	}
}

// URI is the MongoDB connection string of the engine's socket.
func (e *Engine) URI() string {
	return "mongodb://" + strings.ReplaceAll(e.socket, "/", "%2F") + "/"
}

// Close stops an engine this process runs: it stops listening, lets FerretDB
// close its SQLite files, removes the socket and releases the lock. For an
// attached engine it does nothing.
func (e *Engine) Close() error {
	if !e.owner {
		return nil
	}
	var err error
	e.once.Do(func() {
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			err = errors.New("embedded engine: did not stop in 30 s")
		}
		os.Remove(e.socket)
		syscall.Flock(int(e.lock.Fd()), syscall.LOCK_UN)
		e.lock.Close()
	})
	return err
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// levelFilter drops records below min. It applies attributes and groups
// only to records it lets through: the engine derives a logger with the
// arguments of every SQL statement, and formatting those eagerly (as a
// handler's WithAttrs does) cost a sixth of the CPU of a bulk insert.
type levelFilter struct {
	min     slog.Level
	handler slog.Handler
	derive  []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
}

func newLevelFilter(min slog.Level, h slog.Handler) levelFilter {
	return levelFilter{min: min, handler: h}
}

func (h levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.handler.Enabled(ctx, l)
}

func (h levelFilter) Handle(ctx context.Context, r slog.Record) error {
	out := h.handler
	for _, d := range h.derive {
		out = d(out)
	}
	return out.Handle(ctx, r)
}

func (h levelFilter) with(d func(slog.Handler) slog.Handler) slog.Handler {
	h.derive = append(h.derive[:len(h.derive):len(h.derive)], d)
	return h
}

func (h levelFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(func(next slog.Handler) slog.Handler { return next.WithAttrs(attrs) })
}

func (h levelFilter) WithGroup(name string) slog.Handler {
	return h.with(func(next slog.Handler) slog.Handler { return next.WithGroup(name) })
}
