package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	arnID    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hf-token-AbCdEf"
	tokenOne = "hf_firstTokenValue1234567890"
	tokenTwo = "hf_rotatedTokenValue0987654321"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvOrder(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(" from-file \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sm := newSMFake(t)
	sm.set(arnID, "from-secret")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"HF_TOKEN wins", map[string]string{"HF_TOKEN": "a", "HUGGINGFACE_API_KEY": "b", "HF_TOKEN_FILE": file}, "a"},
		{"HUGGINGFACE_API_KEY next", map[string]string{"HF_TOKEN": "  ", "HUGGINGFACE_API_KEY": "b", "HF_TOKEN_FILE": file}, "b"},
		{"file next", map[string]string{"HF_TOKEN_FILE": file, "HF_TOKEN_SECRET_ARN": arnID}, "from-file"},
		{"secret last", map[string]string{"HF_TOKEN_SECRET_ARN": arnID}, "from-secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := FromEnv(context.Background(), envOf(tc.env), Options{SecretsManager: sm.client()})
			if err != nil {
				t.Fatal(err)
			}
			if got := mustToken(t, p); got != tc.want {
				t.Errorf("token source: got the wrong one (%d bytes)", len(got))
			}
		})
	}
}

func TestNothingConfiguredIsErrNoToken(t *testing.T) {
	t.Parallel()
	p, err := FromEnv(context.Background(), envOf(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Token(context.Background()); !errors.Is(err, ErrNoToken) {
		t.Fatalf("got %v, want ErrNoToken", err)
	}
}

func TestTokenFileWrittenLaterIsPickedUp(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "token")
	p, err := FromEnv(context.Background(), envOf(map[string]string{"HF_TOKEN_FILE": file}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Token(context.Background()); !errors.Is(err, ErrNoToken) {
		t.Fatalf("before the file exists: %v, want ErrNoToken", err)
	}
	if err := os.WriteFile(file, []byte(tokenOne+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustToken(t, p); got != tokenOne {
		t.Fatal("file token not picked up")
	}
}

func TestSecretsManagerPlainAndJSON(t *testing.T) {
	t.Parallel()
	sm := newSMFake(t)
	tests := []struct {
		name, secret, key, want string
		wantErr                 error
	}{
		{name: "plain", secret: tokenOne, want: tokenOne},
		{name: "json HF_TOKEN", secret: `{"HF_TOKEN":"` + tokenOne + `"}`, want: tokenOne},
		{name: "json token", secret: `{"token":"` + tokenOne + `","other":"x"}`, want: tokenOne},
		{name: "json custom key", secret: `{"hf":"` + tokenOne + `","HF_TOKEN":"no"}`, key: "hf", want: tokenOne},
		{name: "json without the key", secret: `{"other":"` + tokenOne + `"}`, wantErr: ErrNoToken},
		{name: "not found", wantErr: ErrNoToken},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("%s-%d", arnID, i)
			if tc.secret != "" {
				sm.set(id, tc.secret)
			}
			tok, err := SecretsManager(sm.client(), id, tc.key).Token(context.Background())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tokenOne) {
					t.Fatal("error contains the secret")
				}
				return
			}
			if err != nil || tok.Reveal() != tc.want {
				t.Fatalf("wrong token (err %v)", err)
			}
		})
	}
}

// TestSecretRotationWithoutRestart runs the provider FromEnv builds against
// the fake: the secret is created late, then rotated, and the refresher picks
// up both on its own schedule.
func TestSecretRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	sm := newSMFake(t)
	p, err := FromEnv(context.Background(), envOf(map[string]string{"HF_TOKEN_SECRET_ARN": arnID}),
		Options{RefreshEvery: time.Minute, SecretsManager: sm.client()})
	if err != nil {
		t.Fatal(err)
	}
	r := p.(*Refresher)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }

	if _, err := r.Token(context.Background()); !errors.Is(err, ErrNoToken) {
		t.Fatalf("before the secret exists: %v, want ErrNoToken", err)
	}
	sm.set(arnID, tokenOne)
	if mustToken(t, r) != tokenOne {
		t.Fatal("new secret not picked up")
	}
	sm.set(arnID, `{"HF_TOKEN":"`+tokenTwo+`"}`)
	calls := sm.callCount()
	now = now.Add(59 * time.Second)
	if mustToken(t, r) != tokenOne || sm.callCount() != calls {
		t.Fatal("token re-read before the refresh period")
	}
	now = now.Add(time.Second)
	if mustToken(t, r) != tokenTwo {
		t.Fatal("rotated secret not picked up after the refresh period")
	}
}

func TestRefresherKeepsTokenThroughTransientFailure(t *testing.T) {
	t.Parallel()
	fail := false
	src := ProviderFunc(func(context.Context) (Token, error) {
		if fail {
			return Token{}, errors.New("endpoint unreachable")
		}
		return NewToken(tokenOne), nil
	})
	r := NewRefresher(src, time.Minute)
	if mustToken(t, r) != tokenOne {
		t.Fatal("first read")
	}
	fail = true
	if tok, err := r.Refresh(context.Background()); err != nil || tok.Reveal() != tokenOne {
		t.Fatalf("transient failure dropped the token: %v", err)
	}
}

// TestDefaultAWSChain builds the client from the standard AWS configuration:
// credentials and the Secrets Manager endpoint come from the environment.
func TestDefaultAWSChain(t *testing.T) {
	sm := newSMFake(t)
	sm.set(arnID, tokenOne)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":                "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":            "test-secret-key",
		"AWS_SESSION_TOKEN":                "",
		"AWS_PROFILE":                      "",
		"AWS_REGION":                       "",
		"AWS_DEFAULT_REGION":               "",
		"AWS_CONFIG_FILE":                  filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":      filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_ENDPOINT_URL":                 "",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.srv.URL,
	} {
		t.Setenv(k, v)
	}
	p, err := FromEnv(context.Background(), envOf(map[string]string{"HF_TOKEN_SECRET_ARN": arnID}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if mustToken(t, p) != tokenOne {
		t.Fatal("wrong token through the default chain")
	}
}

func TestTokenNeverPrints(t *testing.T) {
	t.Parallel()
	tok := NewToken(tokenOne)
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		out = append(out, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, struct{ T Token }{tok}), fmt.Sprintf(verb, &tok))
	}
	out = append(out, fmt.Sprint(tok), tok.String(), tok.GoString(), fmt.Sprintln([]Token{tok}))

	js, err := json.Marshal(map[string]any{"token": tok, "nested": struct{ T Token }{tok}})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(js))

	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("token", "token", tok, "group", slog.GroupValue(slog.Any("t", tok)))
	}
	out = append(out, logs.String())

	for _, s := range out {
		if strings.Contains(s, tokenOne) || strings.Contains(s, tokenOne[3:9]) {
			t.Fatalf("token leaked in %q", strings.ReplaceAll(s, tokenOne, "<TOKEN>"))
		}
		if !strings.Contains(s, redacted) {
			t.Fatalf("no %s in %q", redacted, s)
		}
	}
}

func TestErrorsNeverContainTheToken(t *testing.T) {
	t.Parallel()
	sm := newSMFake(t)
	sm.set("json-no-key", `{"other":"`+tokenOne+`"}`)
	sm.set("broken-json", `{"HF_TOKEN":"`+tokenOne)
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "dir-not-file")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	providers := map[string]Provider{
		"json without key": SecretsManager(sm.client(), "json-no-key", "HF_TOKEN"),
		"broken json":      SecretsManager(sm.client(), "broken-json", ""),
		"missing secret":   SecretsManager(sm.client(), "missing", ""),
		"missing file":     File(filepath.Join(dir, "none")),
		"unreadable file":  File(unreadable),
	}
	for name, p := range providers {
		_, err := p.Token(context.Background())
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if strings.Contains(err.Error(), tokenOne) || strings.Contains(fmt.Sprintf("%+v", err), tokenOne) {
			t.Fatalf("%s: error contains the token", name)
		}
	}
}

func TestHubTokenTreatsMissingAsAnonymous(t *testing.T) {
	t.Parallel()
	f := HubToken(Static(""))
	if s, err := f(context.Background()); s != "" || err != nil {
		t.Fatalf("got %d bytes, %v; want anonymous", len(s), err)
	}
	if s, err := HubToken(Static(tokenOne))(context.Background()); s != tokenOne || err != nil {
		t.Fatalf("wrong token, %v", err)
	}
}
