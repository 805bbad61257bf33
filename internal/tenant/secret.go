package tenant

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// SignatureHeader carries a webhook body's signature.
const SignatureHeader = "X-Hokusai-Signature"

func secretKey(tenant string) string { return "hokusai:tenant:" + tenant + ":webhook_secret" }

// WebhookSecret returns the tenant's webhook signing secret, creating it on
// first use. Concurrent first uses agree on one secret.
func WebhookSecret(ctx context.Context, rdb redis.UniversalClient, tenant string) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	fresh := "whsec_" + hex.EncodeToString(raw[:])
	if err := rdb.SetNX(ctx, secretKey(tenant), fresh, 0).Err(); err != nil {
		return "", fmt.Errorf("store webhook secret of %s: %w", tenant, err)
	}
	s, err := rdb.Get(ctx, secretKey(tenant)).Result()
	if err != nil {
		return "", fmt.Errorf("read webhook secret of %s: %w", tenant, err)
	}
	return s, nil
}

// Sign returns the SignatureHeader value for body: "sha256=" and the hex
// HMAC-SHA256 of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is body's signature under secret, in
// constant time.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}
