//go:build !noembedded

package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/FerretDB/FerretDB/ferretdb"
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
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Handler:   "sqlite",
		SQLiteURL: "file:" + filepath.Join(dataDir, sqliteDir) + "/",
		Logger:    engineLog,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded engine: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &Engine{socket: sock, owner: true, lock: lock, cancel: cancel, done: make(chan error, 1)}
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
