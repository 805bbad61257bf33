package secret

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Token is a secret string that cannot leak by accident: every fmt verb, slog
// and encoding/json (through MarshalText) render it as [REDACTED].
type Token struct{ s string }

// NewToken wraps s.
func NewToken(s string) Token { return Token{s: s} }

// Reveal returns the secret itself. Call it only where the token is sent.
func (t Token) Reveal() string { return t.s }

// IsZero reports whether the token is empty.
func (t Token) IsZero() bool { return t.s == "" }

// String implements fmt.Stringer.
func (t Token) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (t Token) GoString() string { return redacted }

// Format implements fmt.Formatter so that no verb (%d, %x, %#v, ...) reaches
// the underlying string.
func (t Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler, so JSON, YAML and friends
// write [REDACTED] too.
func (t Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }
