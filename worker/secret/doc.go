// Package secret provides the worker's HuggingFace token.
//
// A Provider answers Token(ctx). FromEnv picks the source the way the worker is
// configured, first match wins: HF_TOKEN, HUGGINGFACE_API_KEY, HF_TOKEN_FILE (a
// file re-read on every refresh, so a token written after start is picked up),
// or HF_TOKEN_SECRET_ARN (AWS Secrets Manager GetSecretValue through the standard
// AWS credential chain; the SecretString is the token itself, or a JSON object
// holding it under HF_TOKEN_SECRET_KEY, default "HF_TOKEN" then "token"). File
// and Secrets Manager sources are wrapped in a Refresher that re-reads them every
// few minutes, so a rotated token needs no restart. When nothing is configured,
// or the configured file or secret does not exist yet, Token returns an error
// wrapping ErrNoToken.
//
// Tokens travel as Token values, which print, log and marshal as [REDACTED];
// only Reveal gives the string, for the Authorization header. No error from this
// package contains a token.
//
// This package must never import api/, Redis or asynq.
package secret
