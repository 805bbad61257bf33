package secret

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Options tune FromEnv. The zero value is ready to use.
type Options struct {
	// RefreshEvery is how often file and Secrets Manager tokens are re-read.
	// Default DefaultRefreshEvery.
	RefreshEvery time.Duration
	// SecretsManager is the client for HF_TOKEN_SECRET_ARN. Nil builds one from
	// config.LoadDefaultConfig: the standard AWS credential chain, AWS_REGION
	// (else the region in the ARN) and AWS_ENDPOINT_URL_SECRETS_MANAGER.
	SecretsManager SecretsAPI
}

// FromEnv returns the Provider the environment asks for, first match wins:
//
//	HF_TOKEN                the token
//	HUGGINGFACE_API_KEY     the token (the old service's name)
//	HF_TOKEN_FILE           a file holding the token, re-read every RefreshEvery
//	HF_TOKEN_SECRET_ARN     an AWS Secrets Manager secret, re-read every RefreshEvery;
//	HF_TOKEN_SECRET_KEY     the JSON key inside it (default HF_TOKEN, then token)
//
// With none set, the Provider answers ErrNoToken. FromEnv fails only when the
// AWS configuration cannot be loaded.
func FromEnv(ctx context.Context, getenv func(string) string, opts Options) (Provider, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	switch {
	case env("HF_TOKEN") != "":
		return Static(env("HF_TOKEN")), nil
	case env("HUGGINGFACE_API_KEY") != "":
		return Static(env("HUGGINGFACE_API_KEY")), nil
	case env("HF_TOKEN_FILE") != "":
		return NewRefresher(File(env("HF_TOKEN_FILE")), opts.RefreshEvery), nil
	case env("HF_TOKEN_SECRET_ARN") != "":
		id := env("HF_TOKEN_SECRET_ARN")
		api := opts.SecretsManager
		if api == nil {
			var err error
			if api, err = defaultSecretsClient(ctx, id); err != nil {
				return nil, err
			}
		}
		return NewRefresher(SecretsManager(api, id, env("HF_TOKEN_SECRET_KEY")), opts.RefreshEvery), nil
	}
	return ProviderFunc(func(context.Context) (Token, error) {
		return Token{}, fmt.Errorf("set HF_TOKEN, HUGGINGFACE_API_KEY, HF_TOKEN_FILE or HF_TOKEN_SECRET_ARN: %w", ErrNoToken)
	}), nil
}

func defaultSecretsClient(ctx context.Context, id string) (*secretsmanager.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS config for HF_TOKEN_SECRET_ARN: %w", err)
	}
	if a, err := arn.Parse(id); cfg.Region == "" && err == nil {
		cfg.Region = a.Region
	}
	return secretsmanager.NewFromConfig(cfg), nil
}
