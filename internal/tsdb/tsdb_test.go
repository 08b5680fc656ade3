package tsdb_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/store"
	"github.com/sanwatch/sanwatch/internal/store/storetest"
	"github.com/sanwatch/sanwatch/internal/tsdb"
	"github.com/sanwatch/sanwatch/internal/tsdb/tsdbtest"
)

// openVM returns a backend on a fresh VictoriaMetrics.
func openVM(t *testing.T, o tsdb.Options) (*tsdb.Backend, *tsdbtest.VM) {
	t.Helper()
	vm := tsdbtest.Start(t)
	o.URL, o.FlushAfterWrite = vm.URL, true
	b, err := tsdb.Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b, vm
}

// openComposite is the store a worker opens with samples.backend:
// prometheus: SQLite for everything but samples, VictoriaMetrics for those.
func openComposite(t *testing.T) store.Store {
	t.Helper()
	base, err := store.OpenSQLite(filepath.Join(t.TempDir(), "sanwatch.db"))
	require.NoError(t, err)
	b, _ := openVM(t, tsdb.Options{})
	s := store.WithSamples(base, b)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// vmSamples is what VictoriaMetrics keeps, where it differs from SQL.
var vmSamples = storetest.SampleOptions{
	Resolution:      time.Millisecond,
	MinTime:         time.Unix(0, 0),
	MaxTime:         time.Now().Add(tsdb.MaxFutureSkew),
	KeepsDuplicates: true,
	OwnRetention:    true,
}

// TestVictoriaMetricsStore runs the whole store suite on SQLite with the
// samples in a real VictoriaMetrics.
func TestVictoriaMetricsStore(t *testing.T) {
	storetest.RunWith(t, openComposite, vmSamples)
}
