package api

import (
	"net/url"
	"strings"
)

// queryKeyParam is the query parameter the old API documented for keys
// ("not recommended", but partners use it).
const queryKeyParam = "api_key"

// redactQuery returns a raw query string with the value of every api_key
// parameter replaced by REDACTED, for the access log and span attributes: a
// key sent in the URL must never reach a log store or a tracing backend.
// Names are compared as net/url decodes them and in any case (api_key,
// API_KEY, api%5Fkey), and ';' separates pairs as '&' does, so no spelling
// of the name lets a key through; everything else is kept as sent.
func redactQuery(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); {
		j := strings.IndexAny(raw[i:], "&;")
		if j < 0 {
			j = len(raw)
		} else {
			j += i
		}
		pair := raw[i:j]
		if name, _, ok := strings.Cut(pair, "="); ok && isKeyParam(name) {
			pair = name + "=REDACTED"
		}
		b.WriteString(pair)
		if j < len(raw) {
			b.WriteByte(raw[j])
		}
		i = j + 1
	}
	return b.String()
}

// isKeyParam reports whether a raw parameter name spells api_key. A name
// that does not decode is compared as sent.
func isKeyParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	return strings.EqualFold(name, queryKeyParam)
}
