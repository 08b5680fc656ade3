package store

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWithSamplesKeepsIntake: the receiver's tokens and intake stay
// reachable through a store whose samples live elsewhere.
func TestWithSamplesKeepsIntake(t *testing.T) {
	base, err := OpenSQLite(filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	defer base.Close()
	w := WithSamples(base, nil)
	_, ok := w.(IntakeStore)
	require.True(t, ok, "WithSamples over an IntakeStore must stay one")
}
