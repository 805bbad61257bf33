package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// SecretsAPI is the part of the Secrets Manager client this package uses;
// *secretsmanager.Client satisfies it.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// defaultJSONKeys are tried in order when a JSON secret is read without a
// configured key.
var defaultJSONKeys = []string{"HF_TOKEN", "token"}

// SecretsManager returns a Provider that reads secret id (name or ARN) on
// every call. The SecretString is the token itself, or a JSON object holding it
// under key (when key is empty: "HF_TOKEN", then "token"). A secret that does
// not exist, or lacks the key, is ErrNoToken.
func SecretsManager(api SecretsAPI, id, key string) Provider {
	return ProviderFunc(func(ctx context.Context) (Token, error) {
		out, err := api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if rnf := (*types.ResourceNotFoundException)(nil); errors.As(err, &rnf) {
			return Token{}, fmt.Errorf("secret %s not found: %w", id, ErrNoToken)
		}
		if err != nil {
			return Token{}, fmt.Errorf("read secret %s: %w", id, err)
		}
		if out.SecretString == nil {
			return Token{}, fmt.Errorf("secret %s has no SecretString: %w", id, ErrNoToken)
		}
		return tokenFromSecretString(id, *out.SecretString, key)
	})
}

// tokenFromSecretString never quotes s in its errors: s is the secret.
func tokenFromSecretString(id, s, key string) (Token, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") {
		if s == "" {
			return Token{}, fmt.Errorf("secret %s is empty: %w", id, ErrNoToken)
		}
		return NewToken(s), nil
	}
	var fields map[string]any
	if json.Unmarshal([]byte(s), &fields) != nil {
		return Token{}, fmt.Errorf("secret %s starts with { but is not a JSON object", id)
	}
	keys := defaultJSONKeys
	if key != "" {
		keys = []string{key}
	}
	for _, k := range keys {
		if v, ok := fields[k].(string); ok && strings.TrimSpace(v) != "" {
			return NewToken(strings.TrimSpace(v)), nil
		}
	}
	return Token{}, fmt.Errorf("secret %s has no non-empty string under %s: %w", id, strings.Join(keys, " or "), ErrNoToken)
}
