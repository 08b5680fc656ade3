package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBatchBox(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	cases := []struct {
		name, body, want, err string
	}{
		{name: "one box", body: "time,box,component,metric,value\n" + now + ",a1,pool/p0,pool.used_pct,50\n", want: "a1"},
		{name: "two boxes", body: "time,box,component,metric,value\n" + now + ",a1,pool/p0,pool.used_pct,50\n" + now + ",b2,pool/p0,pool.used_pct,50\n", err: "samples of 2 boxes"},
		{name: "nothing valid", body: "time,box,component,metric,value\n", err: "no valid samples"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".csv")
			require.NoError(t, os.WriteFile(p, []byte(tc.body), 0o600))
			got, err := batchBox(p)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestPostOneRetries: 503 and 429 are retried after Retry-After; other
// answers are final; the token goes in the Authorization header.
func TestPostOneRetries(t *testing.T) {
	cases := []struct {
		name     string
		answers  []int
		wantErr  string
		attempts int
	}{
		{name: "accepted at once", answers: []int{202}, attempts: 1},
		{name: "503 then accepted", answers: []int{503, 202}, attempts: 2},
		{name: "429 twice then accepted", answers: []int{429, 429, 202}, attempts: 3},
		{name: "403 is final", answers: []int{403, 202}, wantErr: "403 Forbidden", attempts: 1},
	}
	p := filepath.Join(t.TempDir(), "a1.csv")
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, "Bearer swt_test", r.Header.Get("Authorization"))
				code := tc.answers[n.Add(1)-1]
				if code != 202 {
					w.Header().Set("Retry-After", "0")
					http.Error(w, "nope", code)
					return
				}
				w.WriteHeader(code)
				_, _ = w.Write([]byte(`{"batch_id":"abc","workflow_id":"ingest-abc","status":"started"}`))
			}))
			defer srv.Close()
			o := postOptions{retryFor: 10 * time.Second, tokenByBox: map[string]string{"": "swt_test"}}
			out := postOne(context.Background(), srv.Client(), o, srv.URL, p, "a1")
			require.Equal(t, tc.attempts, out.Attempts)
			if tc.wantErr != "" {
				require.Contains(t, out.Error, tc.wantErr)
				return
			}
			require.Empty(t, out.Error)
			require.Equal(t, "ingest-abc", out.WorkflowID)
		})
	}
}
