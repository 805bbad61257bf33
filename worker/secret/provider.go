package secret

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNoToken means no token is configured, or the configured file or secret
// does not exist (yet). The worker reports it as hf_token_missing.
var ErrNoToken = errors.New("no HuggingFace token configured")

// Provider supplies the current HuggingFace token.
type Provider interface {
	Token(ctx context.Context) (Token, error)
}

// ProviderFunc adapts a function to Provider.
type ProviderFunc func(ctx context.Context) (Token, error)

// Token implements Provider.
func (f ProviderFunc) Token(ctx context.Context) (Token, error) { return f(ctx) }

// Static returns a Provider that always answers tok, or ErrNoToken if tok is
// blank.
func Static(tok string) Provider {
	t := NewToken(strings.TrimSpace(tok))
	return ProviderFunc(func(context.Context) (Token, error) {
		if t.IsZero() {
			return Token{}, ErrNoToken
		}
		return t, nil
	})
}

// File returns a Provider that reads the token from path on every call;
// surrounding whitespace is trimmed. A missing or empty file is ErrNoToken.
func File(path string) Provider {
	return ProviderFunc(func(context.Context) (Token, error) {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return Token{}, fmt.Errorf("token file %s does not exist: %w", path, ErrNoToken)
		}
		if err != nil {
			// os errors name the path and the cause, never the content.
			return Token{}, fmt.Errorf("read token file: %w", err)
		}
		t := NewToken(strings.TrimSpace(string(b)))
		if t.IsZero() {
			return Token{}, fmt.Errorf("token file %s is empty: %w", path, ErrNoToken)
		}
		return t, nil
	})
}

// HubToken adapts p to the Hub client's token function: a missing token
// becomes an anonymous request (public repos still work; private ones answer
// RepoNotFound), other errors are returned.
func HubToken(p Provider) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		t, err := p.Token(ctx)
		if errors.Is(err, ErrNoToken) {
			return "", nil
		}
		return t.Reveal(), err
	}
}
