package deploy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sanwatch/sanwatch/internal/blobstore"
	"github.com/sanwatch/sanwatch/internal/blobstore/s3test"
)

// runScript runs a deploy script with sh and env, and returns its output.
func runScript(t *testing.T, script string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", script)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestS3ScriptsWithSeaweedFS runs the compose stack's S3 scripts the way its
// jobs do, against the real SeaweedFS (no Docker engine here): the
// credentials job's files configure the server and, through
// AWS_SHARED_CREDENTIALS_FILE alone, sanwatch's client; the bucket job
// creates the bucket, and running either again keeps what is there.
func TestS3ScriptsWithSeaweedFS(t *testing.T) {
	dir := t.TempDir()
	out, err := runScript(t, "s3/make-credentials.sh", "DIR="+dir)
	require.NoError(t, err, out)
	require.Contains(t, out, "s3 credentials written to "+dir)
	first, err := os.ReadFile(filepath.Join(dir, "credentials"))
	require.NoError(t, err)
	out, err = runScript(t, "s3/make-credentials.sh", "DIR="+dir)
	require.NoError(t, err, out)
	require.Contains(t, out, "exist, kept")
	again, err := os.ReadFile(filepath.Join(dir, "credentials"))
	require.NoError(t, err)
	require.Equal(t, first, again)
	for _, f := range []string{"s3.json", "credentials"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "%s: readable by the images' users", f)
	}
	creds := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(first))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " = "); ok {
			creds[k] = v
		}
	}
	require.NotEmpty(t, creds["aws_secret_access_key"])
	require.NotContains(t, out, creds["aws_secret_access_key"], "the secret is not printed")

	srv := s3test.StartWith(t, s3test.Options{ConfigFile: filepath.Join(dir, "s3.json"),
		AccessKey: creds["aws_access_key_id"], SecretKey: creds["aws_secret_access_key"]})
	path := filepath.Dir(srv.Bin()) + ":" + os.Getenv("PATH")
	for _, want := range []string{"created bucket sanwatch", "bucket sanwatch exists, kept"} {
		cmd := exec.Command("sh", "s3/create-bucket.sh")
		cmd.Env = []string{"PATH=" + path, "BUCKET=sanwatch", "MASTER=" + srv.Master(), "HOME=" + dir}
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))
		require.Contains(t, string(b), want)
	}

	// sanwatch with only the shared credentials file, as in the stack.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx := context.Background()
	bs, err := blobstore.Open(ctx, srv.URL("sanwatch"))
	require.NoError(t, err)
	defer bs.Close()
	_, err = bs.Put(ctx, blobstore.BatchKey("abc"), strings.NewReader("time,box,component,metric,value\n"), nil)
	require.NoError(t, err)
	ok, err := bs.Exists(ctx, blobstore.BatchKey("abc"))
	require.NoError(t, err)
	require.True(t, ok)

	// Another key is refused: the server checks the identities it was given.
	wrong := filepath.Join(t.TempDir(), "credentials")
	require.NoError(t, os.WriteFile(wrong, []byte("[default]\naws_access_key_id = intruder\naws_secret_access_key = guess\n"), 0o600))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", wrong)
	bad, err := blobstore.Open(ctx, srv.URL("sanwatch"))
	require.NoError(t, err)
	defer bad.Close()
	_, err = bad.Put(ctx, blobstore.BatchKey("def"), strings.NewReader("x"), nil)
	require.Error(t, err)
}
