package store_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) store.Options
		want string // error; empty for success
		typ  store.Store
	}{
		{"sqlite", func(t *testing.T) store.Options {
			return store.Options{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "s.db")}
		}, "", (*store.SQLite)(nil)},
		{"postgres", func(t *testing.T) store.Options {
			return store.Options{Driver: "postgres", DSN: postgresSchema(t)}
		}, "", (*store.Postgres)(nil)},
		{"unknown driver", func(*testing.T) store.Options { return store.Options{Driver: "mysql"} },
			`open store: unknown driver "mysql": allowed sqlite, postgres`, nil},
		{"empty driver", func(*testing.T) store.Options { return store.Options{Path: "x.db"} },
			`open store: unknown driver "": allowed sqlite, postgres`, nil},
		{"sqlite without path", func(*testing.T) store.Options { return store.Options{Driver: "sqlite", DSN: "x"} },
			"open sqlite: empty path", nil},
		{"postgres without dsn", func(*testing.T) store.Options { return store.Options{Driver: "postgres", Path: "x"} },
			"open postgres: empty dsn", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tc.opts(t))
			if tc.want != "" {
				require.EqualError(t, err, tc.want)
				require.Nil(t, s, "no typed nil inside a non-nil Store")
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			require.IsType(t, tc.typ, s)
			_, err = s.CountBoxes(t.Context(), store.BoxQuery{})
			require.NoError(t, err)
		})
	}
}
