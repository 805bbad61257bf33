package hubtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/worker/hub/hubtest"
)

const (
	token   = "hf_validToken0123456789"
	granted = "hf_grantedToken0123456789"
	commit  = "cccccccccccccccccccccccccccccccccccccccc"
)

// answer is what a test looks at in a Hub response.
type answer struct {
	Status int
	Code   string // X-Error-Code
	Body   map[string]any
}

func get(t *testing.T, rawURL, tok string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode, Code: resp.Header.Get("X-Error-Code")}
	if err := json.NewDecoder(resp.Body).Decode(&a.Body); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", rawURL, err)
	}
	return a
}

func newServer(t *testing.T) *hubtest.Server {
	t.Helper()
	s := hubtest.New(t)
	s.SetTokens(token, granted)
	files := map[string][]byte{"config.json": []byte(`{}`)}
	s.AddRepo(hubtest.Repo{ID: "org/public", Files: files, Revisions: map[string]string{"main": commit}})
	s.AddRepo(hubtest.Repo{ID: "org/private", Private: true, Files: files, Revisions: map[string]string{"main": commit}})
	s.AddRepo(hubtest.Repo{ID: "org/gated", Gated: true, Granted: []string{granted}, Files: files, Revisions: map[string]string{"main": commit}})
	return s
}

func TestWhoami(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	identity := map[string]any{"name": hubtest.User, "type": "user", "auth": map[string]any{
		"type": "access_token", "accessToken": map[string]any{"displayName": hubtest.TokenName, "role": "read"}}}
	tests := []struct {
		name, token string
		want        answer
	}{
		{"valid token", token, answer{Status: 200, Body: identity}},
		{"unknown token", "hf_unknown", answer{Status: 401, Body: map[string]any{"error": "Invalid credentials in Authorization header"}}},
		{"no token", "", answer{Status: 401, Body: map[string]any{"error": "Invalid username or password."}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, get(t, s.URL()+"/api/whoami-v2", tc.token)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRepoAccess(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	tests := []struct {
		name, repo, token string
		status            int
		code              string
	}{
		{"public anonymous", "org/public", "", 200, ""},
		{"public with unknown token", "org/public", "hf_unknown", 401, "RepoNotFound"},
		{"private anonymous", "org/private", "", 401, "RepoNotFound"},
		{"private with unknown token", "org/private", "hf_unknown", 401, "RepoNotFound"},
		{"private with valid token", "org/private", token, 200, ""},
		{"missing anonymous", "org/missing", "", 401, "RepoNotFound"},
		{"missing with valid token", "org/missing", token, 404, "RepoNotFound"},
		{"gated anonymous", "org/gated", "", 401, "GatedRepo"},
		{"gated not granted", "org/gated", token, 403, "GatedRepo"},
		{"gated granted", "org/gated", granted, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := get(t, s.URL()+"/api/models/"+tc.repo+"/revision/main", tc.token)
			if got.Status != tc.status || got.Code != tc.code {
				t.Fatalf("got %d %q %v, want %d %q", got.Status, got.Code, got.Body, tc.status, tc.code)
			}
			if tc.status == 200 && got.Body["sha"] != commit {
				t.Fatalf("sha %v, want %s", got.Body["sha"], commit)
			}
		})
	}
}

// TestTokenRotation revokes a token while the server runs.
func TestTokenRotation(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	private := s.URL() + "/api/models/org/private/revision/main"
	if got := get(t, private, token); got.Status != 200 {
		t.Fatalf("before rotation: %d", got.Status)
	}
	s.SetTokens("hf_next")
	for _, tok := range []string{token, "hf_next"} {
		want := map[string]int{token: 401, "hf_next": 200}[tok]
		if got := get(t, private, tok); got.Status != want {
			t.Errorf("after rotation, %s: %d, want %d", tok, got.Status, want)
		}
		if got := get(t, s.URL()+"/api/whoami-v2", tok); got.Status != want {
			t.Errorf("whoami after rotation, %s: %d, want %d", tok, got.Status, want)
		}
	}
}

func TestDefaultRevisionAndCopiedFiles(t *testing.T) {
	t.Parallel()
	s := hubtest.New(t)
	files := map[string][]byte{"a.bin": []byte("first")}
	s.AddRepo(hubtest.Repo{ID: "org/r", Files: files, LFS: []string{"a.bin"}})
	files["a.bin"] = []byte("changed after AddRepo")
	info := get(t, s.URL()+"/api/models/org/r/revision/main", "")
	sha, _ := info.Body["sha"].(string)
	if info.Status != 200 || len(sha) != 40 {
		t.Fatalf("default main: %+v", info)
	}
	resp, err := http.Get(s.URL() + "/org/r/resolve/" + sha + "/a.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "first" || resp.Request.URL.Path != s.CDNPath("org/r", "a.bin") {
		t.Fatalf("got %q from %s", body, resp.Request.URL)
	}
	if n := s.Downloads("org/r", "a.bin"); n != 1 {
		t.Fatalf("%d downloads, want 1", n)
	}
}
