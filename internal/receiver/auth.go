package receiver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sanwatch/sanwatch/internal/store"
)

// TokenPrefix starts every bearer token, so that one is recognised in a
// config file or a secret scanner.
const TokenPrefix = "swt_"

// tokenBytes is how much randomness a token carries.
const tokenBytes = 32

// HashToken returns what the store keeps of a token: its hex sha256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken makes a token for box that expires after ttl (0: never). It
// returns the token, to show once, and its record, which holds only the
// token's hash.
func NewToken(box, label string, ttl time.Duration, now time.Time) (string, store.Token, error) {
	if box == "" {
		return "", store.Token{}, errors.New("new token: box is required")
	}
	secret := make([]byte, tokenBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", store.Token{}, fmt.Errorf("new token: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", store.Token{}, fmt.Errorf("new token: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	rec := store.Token{ID: "tok_" + hex.EncodeToString(id), Box: box, Hash: HashToken(tok), Label: label, CreatedAt: now.UTC()}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl).UTC()
	}
	return tok, rec, nil
}

// errUnauthorized is the reason of a 401 without credentials.
const errUnauthorized = "unauthorised: send Authorization: Bearer <token> (starter token create) or a client certificate"

// authenticate returns the box a request speaks for: the common name of its
// verified client certificate, or the box of its bearer token. A request
// with both must name the same box.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (string, *RejectError) {
	certBox := ""
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		certBox = r.TLS.VerifiedChains[0][0].Subject.CommonName
		if certBox == "" {
			return "", reject(http.StatusUnauthorized, "unauthorised: the client certificate has no common name (it must be the box id)")
		}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if certBox != "" {
			return certBox, nil
		}
		return "", reject(http.StatusUnauthorized, errUnauthorized)
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", reject(http.StatusUnauthorized, "unauthorised: Authorization must be \"Bearer <token>\"")
	}
	tok, err := s.intake.Store.TokenByHash(ctx, HashToken(strings.TrimSpace(token)))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", reject(http.StatusUnauthorized, "unauthorised: unknown token")
	case err != nil:
		s.logger.Error("look up token", "error", err)
		return "", &RejectError{Status: http.StatusServiceUnavailable, Reason: "cannot check the token now: database unavailable"}
	case !tok.RevokedAt.IsZero():
		return "", reject(http.StatusUnauthorized, "unauthorised: token %s was revoked", tok.ID)
	case !tok.Valid(s.intake.now()):
		return "", reject(http.StatusUnauthorized, "unauthorised: token %s expired at %s", tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	case certBox != "" && certBox != tok.Box:
		return "", reject(http.StatusForbidden, "wrong box: the client certificate is for box %q and the token for box %q", certBox, tok.Box)
	}
	return tok.Box, nil
}
