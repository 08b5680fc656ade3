package blobstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/blobstore/s3test"
)

// TestS3Store runs the shared suite on a real S3-compatible server
// (SeaweedFS) on loopback, the client's credentials in the environment.
func TestS3Store(t *testing.T) {
	srv := s3test.Start(t, "sanwatch-test")
	t.Logf("SeaweedFS ready in %s", srv.StartTime)
	srv.SetEnv(t)
	s, err := Open(context.Background(), srv.URL("sanwatch-test"))
	require.NoError(t, err)
	require.Equal(t, "s3://sanwatch-test", s.Where())
	begin := time.Now()
	RunSuite(t, s)
	t.Logf("suite took %s", time.Since(begin))
	require.NoError(t, s.Close())
}
