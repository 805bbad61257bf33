package tenant

import (
	"testing"

	"github.com/hokusai-ai/inference-queue/internal/redistest"
)

var srv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &srv) }

func TestWebhookSecret(t *testing.T) {
	rdb := redistest.Client(t, srv)
	a, err := WebhookSecret(t.Context(), rdb, "acme")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := WebhookSecret(t.Context(), rdb, "acme")
	other, _ := WebhookSecret(t.Context(), rdb, "globex")
	if a != again || a == other || len(a) != len("whsec_")+64 {
		t.Fatalf("secrets %q %q %q", a, again, other)
	}
	body := []byte(`{"batch_id":"b"}`)
	sig := Sign(a, body)
	if !Verify(a, body, sig) || Verify(other, body, sig) || Verify(a, []byte(`{}`), sig) {
		t.Fatal("signature does not verify as it should")
	}
	// A known vector: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
	if got := Sign("key", []byte("The quick brown fox jumps over the lazy dog")); got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Fatalf("Sign = %s", got)
	}
}
