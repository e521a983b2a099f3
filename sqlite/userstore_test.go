package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/userstoretest"
	"github.com/jobcast/jobcast/sqlite"
)

// TestUserStore runs the conformance suite; each handle is another process
// on the same file, beside the job and alert tables.
func TestUserStore(t *testing.T) {
	t.Parallel()
	userstoretest.Run(t, func(t *testing.T) userstoretest.Open {
		path := filepath.Join(t.TempDir(), "jobcast.db")
		return func(t *testing.T) jobcast.UserStore {
			t.Helper()
			s, err := sqlite.OpenUserStore(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}
