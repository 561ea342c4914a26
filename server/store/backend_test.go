package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/flashline/flashline/server/store/storetest"
)

// eachBackend runs test once per database: SQLite in a temp file and PostgreSQL in a fresh
// database (skipped without FLASHLINE_TEST_PG_DSN). open opens that database, again on every
// call (to test what survives a reopen); stores are closed when the test ends.
func eachBackend(t *testing.T, test func(t *testing.T, open func() *Store)) {
	t.Helper()
	for _, driver := range []string{DriverSQLite, DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			o := Options{Driver: driver, Line: "L1"}
			if driver == DriverSQLite {
				o.Path = filepath.Join(t.TempDir(), "db.sqlite")
			} else {
				o.DSN = storetest.PostgresDSN(t)
			}
			test(t, func() *Store {
				t.Helper()
				s, err := OpenOptions(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}
