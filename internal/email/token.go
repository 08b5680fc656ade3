package email

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TokenSource gives the OAuth2 access token for SMTP XOAUTH2.
type TokenSource interface {
	// Token returns the access token to use for the next connection. It is
	// called before every connection; errors never contain the token.
	Token(ctx context.Context) (string, error)
}

var (
	_ TokenSource = (*TokenFile)(nil)
	_ TokenSource = (*TokenCommand)(nil)
)

// Limits of a token source.
const (
	// MaxTokenBytes bounds the output of a token command and the size of a
	// token file; access tokens are a few kilobytes.
	MaxTokenBytes = 64 << 10
	// DefaultTokenTimeout bounds one run of a token command when
	// TokenCommand.Timeout is zero.
	DefaultTokenTimeout = 30 * time.Second
	// DefaultTokenLifetime is how long a token is reused when its source
	// does not say when it expires (a bare token rather than JSON with
	// expires_in). Access tokens of Microsoft 365 and Gmail live an hour.
	DefaultTokenLifetime = 5 * time.Minute
	// TokenRefreshMargin is how long before its expiry a token is replaced;
	// a quarter of the lifetime when that is shorter.
	TokenRefreshMargin = time.Minute
)

// ErrInvalidToken is returned for a token that is empty, too long, or holds
// white space or control characters (which would break the XOAUTH2 string).
var ErrInvalidToken = errors.New("invalid access token")

// TokenFile reads the access token from a file before every connection, so
// that something else (a sidecar, a cron job, an agent) can keep the file
// fresh. The file holds the bare token or JSON {"access_token": "..."}.
type TokenFile struct {
	Path string
}

// Token reads and returns the token in the file.
func (f *TokenFile) Token(context.Context) (string, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return "", fmt.Errorf("read oauth2 token file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("read oauth2 token file %s: %w", f.Path, err)
	}
	if len(data) > MaxTokenBytes {
		return "", fmt.Errorf("read oauth2 token file %s: larger than %d bytes", f.Path, MaxTokenBytes)
	}
	token, _, err := parseToken(data)
	if err != nil {
		return "", fmt.Errorf("read oauth2 token file %s: %w", f.Path, err)
	}
	return token, nil
}

// TokenCommand runs a program, without a shell, that prints an access token:
// the bare token, or JSON {"access_token": "...", "expires_in": seconds} as
// OAuth2 token endpoints answer. The token is reused until TokenRefreshMargin
// before it expires (DefaultTokenLifetime when the output does not say), or
// until Invalidate. One run at a time; concurrent callers wait for it.
//
// The program gets a minimal environment (TokenEnv), never the worker's own
// (which holds SANWATCH_* secrets); its output is never logged, and errors
// quote only a short excerpt of its standard error.
type TokenCommand struct {
	// Argv is the program and its arguments.
	Argv []string
	// Timeout bounds one run; 0: DefaultTokenTimeout.
	Timeout time.Duration

	mu      sync.Mutex
	token   string
	refresh time.Time // when to run the command again
	now     func() time.Time
}

// TokenEnv lists the environment variables a token command inherits from
// the worker, when set: enough to find programs, read its own credentials
// under HOME, and format output.
var TokenEnv = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// Token returns the cached token, or runs the command for a new one.
func (c *TokenCommand) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if c.token != "" && now().Before(c.refresh) {
		return c.token, nil
	}
	token, lifetime, err := c.run(ctx)
	if err != nil {
		return "", err
	}
	if lifetime <= 0 {
		lifetime = DefaultTokenLifetime
	}
	c.token, c.refresh = token, now().Add(lifetime-min(TokenRefreshMargin, lifetime/4))
	return token, nil
}

// Invalidate drops the cached token: the next Token runs the command. The
// Sender calls it when the relay refuses the token.
func (c *TokenCommand) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token, c.refresh = "", time.Time{}
}

// run runs the command once and parses its output.
func (c *TokenCommand) run(ctx context.Context) (string, time.Duration, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return "", 0, errors.New("run oauth2 token command: no program")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTokenTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := c.Argv[0]
	cmd := exec.CommandContext(ctx, name, c.Argv[1:]...) //nolint:gosec // the operator's configured command, no shell
	cmd.Env = tokenEnv()
	cmd.Stdin = nil
	stdout := &limitedBuffer{max: MaxTokenBytes}
	stderr := &limitedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A child that keeps the pipes open does not hold us past the timeout.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", 0, fmt.Errorf("run oauth2 token command %s: timed out after %s", name, timeout)
	case err != nil:
		return "", 0, fmt.Errorf("run oauth2 token command %s: %w%s", name, err, excerpt(stderr.Bytes()))
	case stdout.overflow:
		return "", 0, fmt.Errorf("run oauth2 token command %s: printed more than %d bytes", name, MaxTokenBytes)
	}
	token, lifetime, err := parseToken(stdout.Bytes())
	if err != nil {
		return "", 0, fmt.Errorf("run oauth2 token command %s: %w", name, err)
	}
	return token, lifetime, nil
}

// tokenEnv is the environment of a token command: TokenEnv, from the
// worker's environment where set, and PATH always.
func tokenEnv() []string {
	var env []string
	for _, k := range TokenEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		} else if k == "PATH" {
			env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
		}
	}
	return env
}

// parseToken reads a bare token, or JSON with access_token and, optionally,
// expires_in (seconds, a number or a string). The lifetime is 0 when not
// given. Errors never contain the output.
func parseToken(out []byte) (string, time.Duration, error) {
	out = bytes.TrimSpace(out)
	if !bytes.HasPrefix(out, []byte("{")) {
		token := string(out)
		if err := checkToken(token); err != nil {
			return "", 0, err
		}
		return token, 0, nil
	}
	var v struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", 0, errors.New("output starts with { but is not a JSON object")
	}
	if err := checkToken(v.AccessToken); err != nil {
		return "", 0, fmt.Errorf("access_token: %w", err)
	}
	if len(v.ExpiresIn) == 0 || string(v.ExpiresIn) == "null" {
		return v.AccessToken, 0, nil
	}
	secs, err := strconv.ParseInt(strings.Trim(string(v.ExpiresIn), `"`), 10, 64)
	if err != nil || secs <= 0 {
		return "", 0, fmt.Errorf("expires_in %s: must be a positive number of seconds", v.ExpiresIn)
	}
	return v.AccessToken, time.Duration(secs) * time.Second, nil
}

// checkToken refuses an empty token and one with characters outside
// printable ASCII without space, which an access token never holds.
func checkToken(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(t) > MaxTokenBytes {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return fmt.Errorf("%w: holds white space, control or non-ASCII characters", ErrInvalidToken)
		}
	}
	return nil
}

// excerpt returns " (stderr: ...)" with the last line of a command's standard error,
// quoted and cut to 200 bytes, or nothing.
func excerpt(stderr []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return ""
	}
	if len(last) > 200 {
		last = last[:200] + "..."
	}
	return fmt.Sprintf(" (stderr: %q)", last)
}

// limitedBuffer keeps the first max bytes written and notes the overflow,
// so that a runaway command cannot fill the worker's memory.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.overflow = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns what was kept.
func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }
