package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sanwatch/sanwatch/internal/codec"
	"github.com/sanwatch/sanwatch/internal/email/smtptest"
	"github.com/sanwatch/sanwatch/workflows"
)

// newKeyLine returns "id:base64" of a fresh random AES-256 key.
func newKeyLine(t *testing.T, id string) string {
	t.Helper()
	k := make([]byte, codec.KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return id + ":" + base64.StdEncoding.EncodeToString(k)
}

// writeSecret writes lines to dir/name, mode 0600, and returns its path.
func writeSecret(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	return p
}

var listening = regexp.MustCompile(`msg="codec server listening" addr=(127\.0\.0\.1:\d+)`)

// startCodecServer runs `starter codec-server` with the harness config and
// args on a free loopback port and returns its base URL once it listens.
func (h *harness) startCodecServer(args ...string) (string, *proc) {
	h.t.Helper()
	args = append([]string{"codec-server", "--config", h.cfgPath, "--set", "codec.server_addr=127.0.0.1:0"}, args...)
	p := h.startProc("starter", args, 10*time.Second)
	var addr string
	require.Eventually(h.t, func() bool {
		select {
		case <-p.done:
			h.t.Fatalf("codec-server exited: %v\n%s", p.err, p.Output())
		default:
		}
		m := listening.FindStringSubmatch(p.Output())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 30*time.Second, 50*time.Millisecond, "codec-server did not say it listens")
	return "http://" + addr, p
}

// rawHistory reads a workflow's history as the server stores it, through a
// client without codec.
func rawHistory(t *testing.T, h *harness, workflowID string) *historypb.History {
	t.Helper()
	it := h.raw.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	require.NotEmpty(t, hist.Events, "no history for %s", workflowID)
	return hist
}

// payloads returns every payload in m, and apart those of search attributes
// (which are indexed by the server, so never encrypted).
func payloads(m protoreflect.Message, inSearchAttrs bool, out, searchAttrs *[]*commonpb.Payload) {
	switch v := m.Interface().(type) {
	case *commonpb.Payload:
		if inSearchAttrs {
			*searchAttrs = append(*searchAttrs, v)
		} else {
			*out = append(*out, v)
		}
		return
	case *commonpb.SearchAttributes:
		inSearchAttrs = true
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					payloads(mv.Message(), inSearchAttrs, out, searchAttrs)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					payloads(v.List().Get(i).Message(), inSearchAttrs, out, searchAttrs)
				}
			}
		case fd.Message() != nil:
			payloads(v.Message(), inSearchAttrs, out, searchAttrs)
		}
		return true
	})
}

// decodeOverHTTP posts ps to the codec server's /decode as the Temporal UI
// does and returns the status and body.
func decodeOverHTTP(t *testing.T, url, auth string, ps []*commonpb.Payload) (int, string) {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url+"/decode", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(out)
}

// decodedText decodes ps through the codec server and returns the content
// of the decoded payloads, concatenated.
func decodedText(t *testing.T, url, auth string, ps []*commonpb.Payload) string {
	t.Helper()
	status, body := decodeOverHTTP(t, url, auth, ps)
	require.Equal(t, http.StatusOK, status, body)
	var dec commonpb.Payloads
	require.NoError(t, protojson.Unmarshal([]byte(body), &dec))
	require.Len(t, dec.Payloads, len(ps))
	var b strings.Builder
	for _, p := range dec.Payloads {
		require.NotEqual(t, codec.EncodingEncrypted, string(p.Metadata[codec.MetadataEncoding]), "a payload came back still encrypted")
		b.Write(p.Data)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPayloadsEncryptedAtRest runs the pipeline with a codec key through a
// remediation (its first email failing once, so a failure message with the
// relay's answer is stored) and an ack with a note. The histories the server
// stores hold no owner address, ack note, evidence or SMTP error text; every
// payload but search attributes is encrypted with the key's id. The codec
// server (and the temporal CLI through it) decodes them with the token, and
// refuses without it; after a rotation the old history still decodes; a
// server without the old key names it; a key of the wrong length stops the
// worker and the starter at start.
func TestPayloadsEncryptedAtRest(t *testing.T) {
	secrets := t.TempDir()
	k1 := newKeyLine(t, "k1")
	keysFile := writeSecret(t, secrets, "codec.keys", "# sanwatch payload keys: the first encrypts", k1)
	tok := make([]byte, 24)
	_, err := rand.Read(tok)
	require.NoError(t, err)
	token := hex.EncodeToString(tok)
	tokenFile := writeSecret(t, secrets, "codec.token", token)
	// require_encryption: every payload the workers read must be encrypted,
	// so the whole pipeline below also proves none goes out in the clear.
	h := newHarness(t, harnessOptions{extraYAML: fmt.Sprintf("codec:\n  keys_file: %s\n  auth_token_file: %s\n  require_encryption: true\n", keysFile, tokenFile)})
	writeFleet(t, h)
	acts := h.inProcess(nil)

	const note = "secret-note-xyz"
	h.smtp.FailNext(1, smtptest.Temp4xx)
	batch := faultyBatch(t, h)
	out := h.starter("ingest", batch)
	require.Contains(t, out, "findings=1 new=1")
	msgs := h.smtp.WaitMessages(1, time.Minute)
	require.Equal(t, []string{"owner@example.com"}, msgs[0].To)
	out = h.starter("ack", latencyFP, "--by", "alice", "--note", note)
	require.Contains(t, out, "acknowledged by alice")
	require.Eventually(t, func() bool { return remediationState(t, h).Acked }, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, note, remediationState(t, h).AckNote, "sanwatch's own clients read the encrypted state")
	f, err := acts.Store.Finding(context.Background(), latencyFP)
	require.NoError(t, err)
	require.NotEmpty(t, f.Title)

	// A client without the key cannot read the state.
	v, err := h.raw.QueryWorkflow(context.Background(), workflows.RemediateWorkflowID(latencyFP), "", workflows.QueryState)
	require.NoError(t, err)
	var st workflows.RemediationState
	require.Error(t, v.Get(&st), "a plain client decoded an encrypted query result")

	ingestID := workflows.IngestWorkflowID(mustHash(t, batch))
	ids := []string{ingestID, workflows.AnalyzeWorkflowID(ingestID), workflows.RemediateWorkflowID(latencyFP)}
	// What the histories hold and must not show: the owner's address (the
	// email result), the ack note (update, state), the finding's title (the
	// UI summary) and evidence (the verification result), the relay's answer
	// (a failure message). Also never the metric or the escalation contact.
	clear := []string{"owner@example.com", note, f.Title, "baseline_median", "try again later"}
	never := append([]string{"oncall@example.com", "volume.read_latency_ms"}, clear...)
	var all []*commonpb.Payload
	for _, id := range ids {
		hist := rawHistory(t, h, id)
		bin, err := proto.Marshal(hist)
		require.NoError(t, err)
		js, err := protojson.Marshal(hist)
		require.NoError(t, err)
		for _, s := range never {
			require.NotContains(t, string(bin), s, "%s: the stored history holds %q in the clear", id, s)
			require.NotContains(t, string(js), s, "%s: the stored history holds %q in the clear", id, s)
		}
		var ps, sa []*commonpb.Payload
		payloads(hist.ProtoReflect(), false, &ps, &sa)
		require.NotEmpty(t, ps, id)
		for _, p := range ps {
			require.Equal(t, codec.EncodingEncrypted, string(p.Metadata[codec.MetadataEncoding]), "%s: a payload is not encrypted: %v", id, p)
			require.Equal(t, "k1", string(p.Metadata[codec.MetadataKeyID]), id)
		}
		all = append(all, ps...)
	}

	// The codec server decodes the same payloads for holders of the token.
	url, server := h.startCodecServer()
	for _, tc := range []struct{ name, auth string }{
		{name: "no Authorization header"},
		{name: "wrong token", auth: "Bearer " + strings.Repeat("0", len(token))},
		{name: "token without Bearer", auth: token},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			status, body := decodeOverHTTP(t, url, tc.auth, all)
			require.Equal(t, http.StatusUnauthorized, status, body)
			require.NotContains(t, body, note)
		})
	}
	text := decodedText(t, url, "Bearer "+token, all)
	for _, s := range clear {
		require.Contains(t, text, s, "decoded through the codec server")
	}
	require.Contains(t, server.Output(), `reason="no Authorization header"`)
	require.NotContains(t, server.Output(), token, "the codec server logged its token")

	// The temporal CLI, as the README shows it, decodes through the server.
	remID := workflows.RemediateWorkflowID(latencyFP)
	cliText := func(out string) string {
		var hist historypb.History
		require.NoError(t, protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal([]byte(out), &hist), out)
		var ps, sa []*commonpb.Payload
		payloads(hist.ProtoReflect(), false, &ps, &sa)
		require.NotEmpty(t, ps)
		var b strings.Builder
		for _, p := range ps {
			b.WriteString(string(p.Metadata[codec.MetadataEncoding]) + " " + string(p.Data) + "\n")
		}
		return b.String()
	}
	plain := cliText(h.temporal("workflow", "show", "--workflow-id", remID, "--output", "json"))
	require.NotContains(t, plain, note)
	require.Contains(t, plain, codec.EncodingEncrypted)
	decoded := cliText(h.temporal("workflow", "show", "--workflow-id", remID, "--output", "json",
		"--codec-endpoint", url, "--codec-auth", "Bearer "+token))
	require.Contains(t, decoded, note)
	require.Contains(t, decoded, "owner@example.com")
	require.NotContains(t, decoded, codec.EncodingEncrypted)

	// Rotation: a new key on top, the retired one kept below, still decodes
	// what the retired key sealed; what is sealed now names the new key.
	k2 := newKeyLine(t, "k2")
	rotated := writeSecret(t, secrets, "rotated.keys", k2, k1)
	rurl, _ := h.startCodecServer("--set", "codec.keys_file="+rotated)
	require.Contains(t, decodedText(t, rurl, "Bearer "+token, all), note)
	req, err := http.NewRequest(http.MethodPost, rurl+"/encode", strings.NewReader(`{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"MQ=="}]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	encBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(encBody))
	var sealed commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(encBody, &sealed))
	require.Equal(t, "k2", string(sealed.Payloads[0].Metadata[codec.MetadataKeyID]))

	// Without the retired key: a clear error naming the id it needs.
	newOnly := writeSecret(t, secrets, "new-only.keys", k2)
	nurl, _ := h.startCodecServer("--set", "codec.keys_file="+newOnly)
	status, body := decodeOverHTTP(t, nurl, "Bearer "+token, all[:1])
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, `unknown encryption key id "k1" (configured: k2)`)

	// A key of the wrong length: worker and starter refuse to start and name
	// the key, never its value.
	short := "old-2023:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	bad := writeSecret(t, secrets, "bad.keys", k1, short)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "worker", args: []string{"--set", "codec.keys_file=" + bad}},
		{name: "starter", args: []string{"findings", "--set", "codec.keys_file=" + bad}},
		{name: "starter codec-server", args: []string{"codec-server", "--set", "codec.keys_file=" + bad}},
	} {
		t.Run("wrong key length: "+tc.name, func(t *testing.T) {
			prog := strings.Fields(tc.name)[0]
			out, code := h.run(prog, tc.args...)
			require.Equal(t, 1, code, out)
			require.Contains(t, out, `config: codec.keys_file = "`+bad+`": key "old-2023" (line 2): is 16 bytes, must be 32`)
			require.NotContains(t, out, strings.TrimPrefix(short, "old-2023:"))
			require.NotContains(t, out, strings.TrimPrefix(k1, "k1:"))
		})
	}
}
