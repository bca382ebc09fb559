// Package store connects Switchboard to MongoDB: a deployment named by URI,
// or the embedded engine (FerretDB on SQLite) running in this process. It
// names the databases, sets up indexes and hands out a handle bound to one
// customer's database, so a missing filter cannot reach another tenant.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Names are the database names. The zero value means the production names.
type Names struct {
	Control string // partners, customers, events, signing_keys, locks, idempotency
	Keys    string // customer_keys
	// Data holds every customer's documents (CustomerCollections): one
	// database, or on the embedded engine Cells databases "<Data>_<n>".
	Data string
	// Cells is the number of databases customer data is spread over; 0
	// means DefaultCells on the embedded engine and 1 on MongoDB.
	Cells int
	// LegacyPrefix named the databases of the first layout, one per
	// customer (prefix + id without dashes); only migrate reads them.
	LegacyPrefix string
}

// DefaultCells is the number of cells on the embedded engine.
const DefaultCells = 64

func (n Names) withDefaults() Names {
	if n.Control == "" {
		n.Control = "switchboard"
	}
	if n.Keys == "" {
		n.Keys = "switchboard_keys"
	}
	if n.Data == "" {
		n.Data = "switchboard_data"
	}
	if n.LegacyPrefix == "" {
		n.LegacyPrefix = "sb_"
	}
	return n
}

// Config says where the data lives.
type Config struct {
	// URI of a MongoDB deployment; empty means the embedded engine.
	URI string
	// KeysURI, if set, holds the keyring database on another deployment
	// (its backups can follow their own policy). Empty means URI.
	KeysURI string
	// DataDir holds the embedded engine's files.
	DataDir string
	Names   Names
	Logger  *slog.Logger
}

// DB is an open connection to the control, keyring and customer databases.
type DB struct {
	Client  *mongo.Client
	Control *mongo.Database
	Keys    *mongo.Database

	keysClient *mongo.Client // nil when the keyring shares Client
	names      Names
	engine     *Engine // nil when connected to a deployment
	shared     bool    // the client belongs to someone else (tests)
}

// Open connects to cfg.URI, or starts (or attaches to) the embedded engine
// when cfg.URI is empty, and sets up indexes.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db := &DB{names: cfg.Names.withDefaults()}
	uri := cfg.URI
	if uri == "" {
		eng, err := StartEngine(ctx, cfg.DataDir, cfg.Logger)
		if err != nil {
			return nil, err
		}
		db.engine = eng
		uri = eng.URI()
	}
	db.names.Cells = cellsFor(db.names.Cells, db.engine != nil)
	if cfg.URI != "" {
		cfg.Logger.Info("connecting to the database", "uri", Redact(cfg.URI))
	}
	client, err := connect(ctx, uri)
	if err != nil {
		db.closeEngine()
		return nil, err
	}
	db.Client = client
	keysClient := client
	if cfg.KeysURI != "" && cfg.KeysURI != uri {
		keysClient, err = connect(ctx, cfg.KeysURI)
		if err != nil {
			_ = client.Disconnect(ctx)
			db.closeEngine()
			return nil, fmt.Errorf("open keyring database: %w", err)
		}
		db.keysClient = keysClient
	}
	db.Control = client.Database(db.names.Control)
	db.Keys = keysClient.Database(db.names.Keys)
	if err := db.EnsureIndexes(ctx); err != nil {
		_ = db.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if db.engine != nil {
		if err := db.ensureCells(ctx); err != nil {
			_ = db.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return db, nil
}

// ensureCells creates every cell's database on the embedded engine (one
// file each), so that the files under the data dir are the same whatever
// the number of customers. Only missing ones are created.
func (db *DB) ensureCells(ctx context.Context) error {
	have, err := db.Client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list databases: %w", err)
	}
	for _, name := range db.cellNames() {
		if slices.Contains(have, name) {
			continue
		}
		err := db.Client.Database(name).CreateCollection(ctx, CustomerCollections[0])
		var ce mongo.CommandError
		if err != nil && !(errors.As(err, &ce) && ce.Code == 48) { // NamespaceExists: a racing opener
			return fmt.Errorf("create cell %s: %w", name, err)
		}
	}
	return nil
}

// WithNames returns a DB over the same connection with other database names.
// Closing it leaves the connection open; tests use it for fresh databases.
func WithNames(parent *DB, names Names) *DB {
	names = names.withDefaults()
	names.Cells = cellsFor(names.Cells, parent.engine != nil)
	db := &DB{
		Client: parent.Client,
		names:  names,
		engine: parent.engine,
		shared: true,
	}
	keysClient := parent.Client
	if parent.keysClient != nil {
		keysClient = parent.keysClient
	}
	db.Control = parent.Client.Database(names.Control)
	db.Keys = keysClient.Database(names.Keys)
	return db
}

// Redact returns a connection string without its password, for messages.
func Redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(an unparsable MongoDB URI)"
	}
	return u.Redacted()
}

func connect(ctx context.Context, uri string) (*mongo.Client, error) {
	// Defaults first: what the URI says (serverSelectionTimeoutMS, ...) wins.
	opts := options.Client().
		SetServerSelectionTimeout(10 * time.Second).
		SetTimeout(30 * time.Second).
		ApplyURI(uri)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx, nil); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("cannot reach the database at %s within 15 s; is it running, and is the address right? (%w)", Redact(uri), err)
	}
	return client, nil
}

// DataDir is the embedded engine's data dir ("" on MongoDB).
func (db *DB) DataDir() string {
	if db.engine == nil {
		return ""
	}
	return db.engine.dir
}

// Embedded reports whether the database is the in-process engine.
func (db *DB) Embedded() bool { return db.engine != nil }

func cellsFor(n int, embedded bool) int {
	switch {
	case n > 0:
		return n
	case embedded:
		return DefaultCells
	default:
		return 1
	}
}

// LegacyDatabaseName is the name of a customer's own database in the first
// layout (one database per customer).
func (db *DB) LegacyDatabaseName(customerID string) string {
	return db.names.LegacyPrefix + strings.ReplaceAll(customerID, "-", "")
}

// ScrubKeys makes the keyring database's files forget what was deleted
// from it, at once: on the embedded engine SQLite's secure_delete has
// zeroed the deleted records in the database file, and this empties the
// write-ahead log that still held them. A destroyed customer key is then in
// no file under the data dir. On MongoDB it does nothing: the engine's free
// space and the oplog are out of reach, so residual copies of a wrapped key
// are bounded by the master epoch that wrapped it (see docs/DESIGN.md).
func (db *DB) ScrubKeys(ctx context.Context) error {
	if db.engine == nil {
		return nil
	}
	return db.engine.scrub(ctx, db.Keys.Name())
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	if db.keysClient != nil {
		if err := db.keysClient.Ping(ctx, nil); err != nil {
			return fmt.Errorf("ping keyring database: %w", err)
		}
	}
	return nil
}

// Close disconnects and, in embedded mode, stops the engine cleanly.
func (db *DB) Close(ctx context.Context) error {
	if db.shared {
		return nil
	}
	var errs []error
	if db.keysClient != nil {
		errs = append(errs, db.keysClient.Disconnect(ctx))
	}
	if db.Client != nil {
		errs = append(errs, db.Client.Disconnect(ctx))
	}
	errs = append(errs, db.closeEngine())
	return errors.Join(errs...)
}

func (db *DB) closeEngine() error {
	if db.engine == nil {
		return nil
	}
	return db.engine.Close()
}

// index is one index of a collection.
type index struct {
	db, coll string
	keys     bson.D
	unique   bool
	name     string
}

// EnsureIndexes creates the indexes of the control and keyring databases.
// It is idempotent: an index that exists is left alone.
func (db *DB) EnsureIndexes(ctx context.Context) error {
	idx := []index{
		{db.names.Control, "partners", bson.D{{Key: "keyPrefix", Value: 1}}, false, "keyPrefix"},
		{db.names.Control, "partner_keys", bson.D{{Key: "partnerId", Value: 1}}, false, "partnerId"},
		{db.names.Control, "customers", bson.D{{Key: "space", Value: 1}}, true, "space_unique"},
		{db.names.Control, "customers", bson.D{{Key: "partnerId", Value: 1}, {Key: "_id", Value: -1}}, false, "partner_newest"},
		{db.names.Control, "customers", bson.D{{Key: "status", Value: 1}, {Key: "retention.shredAt", Value: 1}}, false, "status_shredAt"},
	}
	// Events are claims now, found by _id ("<customer id>:<version>"); the
	// index of the earlier format would refuse them.
	if err := db.Control.Collection("events").Indexes().DropOne(ctx, "customer_version_unique"); err != nil && !isIndexNotFound(err) {
		return fmt.Errorf("drop index events.customer_version_unique: %w", err)
	}
	// Keys live in partner_keys now; a partner without a key of its own
	// must not collide on an empty keyPrefix.
	if err := db.Control.Collection("partners").Indexes().DropOne(ctx, "keyPrefix_unique"); err != nil && !isIndexNotFound(err) {
		return fmt.Errorf("drop index partners.keyPrefix_unique: %w", err)
	}
	for _, ix := range idx {
		c := db.Client.Database(ix.db).Collection(ix.coll)
		model := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name).SetUnique(ix.unique)}
		if _, err := c.Indexes().CreateOne(ctx, model); err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.coll, ix.name, err)
		}
	}
	return nil
}

// isIndexNotFound reports a dropIndexes of an index (or collection) that
// does not exist.
func isIndexNotFound(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && (ce.Code == 27 || ce.Code == 26 || ce.Name == "IndexNotFound" || ce.Name == "NamespaceNotFound")
}

// WithClient returns a DB with the same names over another connection to
// the same deployment (tests that watch their own commands). Closing it
// leaves both connections open.
func WithClient(parent *DB, client *mongo.Client) *DB {
	db := &DB{Client: client, names: parent.names, engine: parent.engine, shared: true}
	db.Control = client.Database(parent.names.Control)
	db.Keys = client.Database(parent.names.Keys)
	return db
}
