// Package store is sailmaker's embedded database: one SQLite file in the
// state directory holding the build queue, webhook deliveries and the
// append-only push ledger. SQLite (pure Go, no cgo) lets the service and
// CLI processes share it safely: writes are serialised by SQLite's own
// locking and readers never block a writer (WAL).
package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// FileName is the database file inside the state directory.
const FileName = "sailmaker.db"

// Store is an open database.
type Store struct {
	db       *sql.DB
	path     string
	readOnly bool
}

// migrations are applied in order; the index+1 is the schema version kept in
// PRAGMA user_version. Append only: never edit a released migration.
var migrations = []string{
	// 1: the push ledger. Triggers make it append-only for every client
	// of the file, not just for this package's API.
	`CREATE TABLE ledger (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		time        TEXT NOT NULL,
		actor       TEXT NOT NULL,
		action      TEXT NOT NULL,
		repository  TEXT NOT NULL,
		tag         TEXT NOT NULL,
		old_digest  TEXT NOT NULL DEFAULT '',
		new_digest  TEXT NOT NULL DEFAULT '',
		build_id    TEXT NOT NULL DEFAULT '',
		note        TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX ledger_repo_tag ON ledger(repository, tag, id);
	CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
		BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
	CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
		BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;`,
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

// OpenReadOnly opens an existing database for reading only: it creates
// nothing, migrates nothing and writes nothing, so a user who may only read
// the state directory can query it while the service writes to it.
//
// SQLite reads a WAL database through its -wal and -shm files. When they
// exist (a writer has the database open) they are used read-only, and the
// WAL index is rebuilt in this process's memory if the -shm cannot be
// written. When they do not exist, every change is already in the database
// file and, without write access to the directory, they cannot be made:
// the file is then read as immutable (no locks; a writer that starts
// meanwhile writes to a new WAL, not to the database file, until it
// checkpoints).
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	params := "mode=ro&_pragma=busy_timeout(10000)"
	if !exists(path+"-wal") && !writable(filepath.Dir(path)) {
		params = "mode=ro&immutable=1"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+params)
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, readOnly: true}
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("reading the store %s: %w", path, err)
	}
	if version > len(migrations) {
		db.Close()
		return nil, fmt.Errorf("store %s: schema version %d is newer than this sailmaker knows (%d): upgrade sailmaker", path, version, len(migrations))
	}
	return s, nil
}

// OpenDirReadOnly is OpenReadOnly for the store in a state directory.
func OpenDirReadOnly(ctx context.Context, stateDir string) (*Store, error) {
	return OpenReadOnly(ctx, filepath.Join(stateDir, FileName))
}

// ReadOnly says whether the store was opened with OpenReadOnly.
func (s *Store) ReadOnly() bool { return s.readOnly }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writable says whether this process may create files in dir.
func writable(dir string) bool {
	return unix.Access(dir, unix.W_OK|unix.X_OK) == nil
}

// OpenDir opens the store in a state directory.
func OpenDir(ctx context.Context, stateDir string) (*Store, error) {
	return Open(ctx, filepath.Join(stateDir, FileName))
}

// DB is the underlying database, for the packages that own other tables.
func (s *Store) DB() *sql.DB { return s.db }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this sailmaker knows (%d): upgrade sailmaker", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

// Migrate lets another package add its tables: name must be unique, stmts
// run once per database, in a transaction.
func (s *Store) Migrate(ctx context.Context, name, stmts string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_parts (name TEXT PRIMARY KEY)`); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_parts WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, stmts); err != nil {
		return fmt.Errorf("schema %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_parts(name) VALUES (?)`, name); err != nil {
		return err
	}
	return tx.Commit()
}
