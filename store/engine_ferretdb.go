//go:build !noembedded

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the driver FerretDB itself uses, for scrub
)

// This file links the embedded engine (FerretDB and SQLite). A production
// binary that talks to MongoDB leaves it out: go build -tags noembedded.

func run(ctx context.Context, dataDir string, lock *os.File, logger *slog.Logger) (*Engine, error) {
	sock := socketPath(dataDir)
	// We hold the lock, so a socket file left here is from a process that died.
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("embedded engine: remove stale socket: %w", err)
	}
	// FerretDB logs every connection at info level and dumps failed
	// commands' wire messages as warnings; our code logs the errors it gets.
	engineLog := slog.New(newLevelFilter(slog.LevelError, logger.Handler()))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{Unix: sock},
		Handler:  "sqlite",
		// secure_delete: SQLite overwrites deleted records and freed pages
		// with zeros, so a destroyed key leaves the database file at once
		// (Scrub then empties the WAL).
		SQLiteURL: "file:" + filepath.Join(dataDir, sqliteDir) + "/?_pragma=secure_delete(on)",
		Logger:    engineLog,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded engine: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &Engine{socket: sock, dir: dataDir, owner: true, lock: lock, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- f.Run(runCtx) }()
	if err := waitForSocket(ctx, sock, e.done); err != nil {
		cancel()
		return nil, err
	}
	// The socket may sit in the shared temp dir: only this user may connect.
	if err := os.Chmod(sock, 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded engine: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dataDir, addrFile), []byte(sock+"\n")); err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded engine: record socket: %w", err)
	}
	return e, nil
}

// scrub checkpoints the write-ahead log of one database's SQLite file into
// the file and truncates the log to nothing: after it, what secure_delete
// overwrote in the file is gone from the log too. It waits (busy handler)
// for readers in the middle of a transaction, and retries a checkpoint they
// kept from completing.
func (e *Engine) scrub(ctx context.Context, dbName string) error {
	path := filepath.Join(e.dir, sqliteDir, dbName+".sqlite")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("scrub %s: %w", dbName, err)
	}
	defer db.Close()
	for attempt := 0; ; attempt++ {
		var busy, logFrames, checkpointed int
		if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
			return fmt.Errorf("scrub %s: %w", dbName, err)
		}
		if busy == 0 {
			return nil
		}
		if attempt == 50 {
			return fmt.Errorf("scrub %s: the log stays in use", dbName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
