package blobstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFileStore runs the shared suite on the embedded file:// store.
func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{"file://" + dir + "/a", dir + "/b"} {
		s, err := Open(context.Background(), u)
		require.NoError(t, err, u)
		RunSuite(t, s)
		require.NoError(t, s.Close())
	}
}

func TestOpenRefusesCredentialsInURL(t *testing.T) {
	_, err := Open(context.Background(), "s3://AKIA:secret@bucket?region=us-east-1")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
	_, err = Open(context.Background(), "")
	require.ErrorContains(t, err, "batches.url")
}

// RunSuite is the behaviour every batch store backend must have.
func RunSuite(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	key := BatchKey("abc123")
	ok, err := s.Exists(ctx, key)
	require.NoError(t, err)
	require.False(t, ok)
	_, err = s.Open(ctx, key)
	require.True(t, errors.Is(err, ErrNotFound), "%v", err)

	n, err := s.Put(ctx, key, strings.NewReader("box,component\n"), map[string]string{"box": "a1"})
	require.NoError(t, err)
	require.EqualValues(t, 14, n)
	obj, meta, err := s.Stat(ctx, key)
	require.NoError(t, err)
	require.EqualValues(t, 14, obj.Size)
	require.Equal(t, "a1", meta["box"])
	r, err := s.Open(ctx, key)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Equal(t, "box,component\n", string(b))

	require.NoError(t, s.Copy(ctx, QuarantineKey("abc123"), key, map[string]string{"reason": "bad"}))
	var keys []string
	require.NoError(t, s.List(ctx, "", func(o Object) (bool, error) {
		keys = append(keys, o.Key)
		return false, nil
	}))
	require.Equal(t, []string{"batches/abc123", "quarantine/abc123"}, keys)

	require.NoError(t, s.Delete(ctx, key))
	require.NoError(t, s.Delete(ctx, key), "deleting a missing object is not an error")
	require.NoError(t, s.Delete(ctx, QuarantineKey("abc123")))

	// A failed write leaves no object behind.
	_, err = s.Put(ctx, key, io.MultiReader(strings.NewReader("partial"), errReader{}), nil)
	require.Error(t, err)
	ok, err = s.Exists(ctx, key)
	require.NoError(t, err)
	require.False(t, ok, "a failed write must not publish a partial object")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }
