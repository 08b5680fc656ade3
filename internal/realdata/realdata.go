// Package realdata finds the real drive data the tests and the backtest use:
// ../shared/data beside the repository (Backblaze's public drive stats).
package realdata

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Path returns the path of name inside ../shared/data beside the
// repository. It fails the test, never skips it, when the data is not there:
// detection is judged on real data, and CI lays it beside every clone.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("real drive data missing: %v (the repository expects ../shared/data beside it)", err)
	}
	return p
}
