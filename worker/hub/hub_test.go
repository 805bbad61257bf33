package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hokusai-ai/inference-queue/worker/hub/hubtest"
)

const (
	goodToken = "hf_goodTokenValue0123456789abcdef"
	badToken  = "hf_revokedTokenValue9876543210zyxw"
	commitA   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// The repos every test's Hub holds. Tests only read them.
var (
	publicRepo = hubtest.Repo{
		ID:        "acme/public",
		Revisions: map[string]string{"main": commitA, "v1.0": commitA, "refs/pr/1": commitB},
		Files: map[string][]byte{
			"config.json":        []byte(`{"hokusai":{"task":"lead-scoring"}}`),
			"model.json":         []byte(strings.Repeat(`{"tree":[1,2,3]}`, 512)),
			"onnx/model.onnx":    []byte(strings.Repeat("\x08\x07onnx", 300)),
			"README with a #.md": []byte("# readme\n"),
		},
		LFS:       []string{"model.json", "onnx/model.onnx"},
		FormerIDs: []string{"acme/old-name"},
	}
	privateRepo = hubtest.Repo{
		ID:        "acme/private",
		Private:   true,
		Revisions: map[string]string{"main": commitA},
		Files: map[string][]byte{
			"config.json": []byte(`{"private":true}`),
			"weights.bin": []byte(strings.Repeat("private-weights", 200)),
		},
		LFS: []string{"weights.bin"},
	}
	gatedRepo = hubtest.Repo{
		ID:        "acme/gated",
		Gated:     true,
		Revisions: map[string]string{"main": commitA},
		Files:     map[string][]byte{"config.json": []byte(`{}`)},
	}
)

// newHub starts a fake Hub holding the three repos, accepting goodToken.
func newHub(t testing.TB) *hubtest.Server {
	t.Helper()
	h := hubtest.New(t)
	for _, r := range []hubtest.Repo{publicRepo, privateRepo, gatedRepo} {
		h.AddRepo(r)
	}
	h.SetTokens(goodToken)
	return h
}

func sha256Hex(b []byte) string { return hubtest.ETag(b, true) }

// etag is what the Hub calls file of r, and the name of its blob.
func etag(r hubtest.Repo, file string) string {
	return hubtest.ETag(r.Files[file], slices.Contains(r.LFS, file))
}

// newTestClient points a client at the fake with millisecond backoffs.
func newTestClient(t *testing.T, endpoint, cache, token string) *Client {
	t.Helper()
	c, err := New(Options{
		Endpoint:       endpoint,
		CacheDir:       cache,
		Token:          func(context.Context) (string, error) { return token, nil },
		MaxAttempts:    4,
		MinBackoff:     time.Millisecond,
		MaxBackoff:     4 * time.Millisecond,
		RequestTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.lockPoll = time.Millisecond
	return c
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// layout describes a cache folder: dirs, files (by content), and symlinks (by
// their exact target), relative to root.
func layout(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "link " + target
			return err
		case d.IsDir():
			out[rel] = "dir"
		default:
			out[rel] = "file " + sha256Hex([]byte(readFile(t, p)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hfLayout is the tree huggingface_hub writes for files of repo at commit,
// fetched as revision: blobs named by etag, relative snapshot links,
// refs/{revision} holding the commit.
func hfLayout(repo hubtest.Repo, revision, commit string, files ...string) map[string]string {
	out := map[string]string{"blobs": "dir", "snapshots": "dir", "snapshots/" + commit: "dir"}
	for _, name := range files {
		out["blobs/"+etag(repo, name)] = "file " + sha256Hex(repo.Files[name])
		link := "snapshots/" + commit + "/" + name
		for d := filepath.Dir(link); d != "snapshots/"+commit; d = filepath.Dir(d) {
			out[d] = "dir"
		}
		out[link] = "link " + strings.Repeat("../", strings.Count(name, "/")+2) + "blobs/" + etag(repo, name)
	}
	if revision != commit {
		out["refs"] = "dir"
		out["refs/"+revision] = "file " + sha256Hex([]byte(commit))
		for d := filepath.Dir("refs/" + revision); d != "refs"; d = filepath.Dir(d) {
			out[d] = "dir"
		}
	}
	return out
}

func TestSnapshotWritesTheHFLayout(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	c := newTestClient(t, hub.URL(), cache, "")

	dir, commit, err := c.Snapshot(context.Background(), "acme/public", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	repo := publicRepo
	if commit != commitA || dir != filepath.Join(cache, "models--acme--public", "snapshots", commitA) {
		t.Fatalf("got %s, %s", dir, commit)
	}
	all := slices.Sorted(func(yield func(string) bool) {
		for name := range repo.Files {
			if !yield(name) {
				return
			}
		}
	})
	want := hfLayout(repo, "main", commitA, all...)
	if diff := cmp.Diff(want, layout(t, filepath.Join(cache, "models--acme--public"))); diff != "" {
		t.Fatalf("cache layout (-huggingface_hub +ours):\n%s", diff)
	}
	for _, name := range all {
		if got := readFile(t, filepath.Join(dir, name)); got != string(repo.Files[name]) {
			t.Errorf("%s: wrong content", name)
		}
		if _, err := os.Stat(filepath.Join(cache, ".locks", "models--acme--public", etag(repo, name)+".lock")); err != nil {
			t.Errorf("%s: no lock file where huggingface_hub puts it: %v", name, err)
		}
	}

	// Everything is cached now: a second call downloads nothing.
	if _, _, err := c.Snapshot(context.Background(), "acme/public", "v1.0", []string{"model.json"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range all {
		if n := hub.Downloads("acme/public", name); n != 1 {
			t.Errorf("%s downloaded %d times, want 1", name, n)
		}
	}
	if got := readFile(t, filepath.Join(cache, "models--acme--public", "refs", "v1.0")); got != commitA {
		t.Errorf("refs/v1.0 = %q", got)
	}
}

func TestOfflineReadsAPythonWrittenCache(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	// Build the tree exactly as huggingface_hub lays it out on Linux.
	repoDir := filepath.Join(cache, "models--acme--leads")
	cfg, model := []byte(`{"hokusai":{}}`), []byte("model bytes")
	cfgTag, modelTag := hubtest.ETag(cfg, false), hubtest.ETag(model, true)
	mustWrite := func(path string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustLink := func(target, path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(filepath.Join(repoDir, "blobs", cfgTag), cfg)
	mustWrite(filepath.Join(repoDir, "blobs", modelTag), model)
	mustLink("../../blobs/"+cfgTag, filepath.Join(repoDir, "snapshots", commitA, "config.json"))
	mustLink("../../../blobs/"+modelTag, filepath.Join(repoDir, "snapshots", commitA, "xgb", "model.json"))
	mustLink("../../blobs/"+cfgTag, filepath.Join(repoDir, "snapshots", commitB, "config.json"))
	mustWrite(filepath.Join(repoDir, "refs", "main"), []byte(commitA))
	mustWrite(filepath.Join(repoDir, "refs", "refs", "pr", "7"), []byte(commitB))
	mustWrite(filepath.Join(cache, ".locks", "models--acme--leads", modelTag+".lock"), nil)
	if err := os.MkdirAll(filepath.Join(repoDir, ".no_exist", commitA), 0o755); err != nil {
		t.Fatal(err)
	}

	c, err := New(Options{CacheDir: cache, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir, commit, err := c.Snapshot(ctx, "acme/leads", "main", []string{"config.json", "xgb/model.json"})
	if err != nil {
		t.Fatal(err)
	}
	if commit != commitA || readFile(t, filepath.Join(dir, "xgb", "model.json")) != string(model) {
		t.Fatalf("offline snapshot: %s %s", dir, commit)
	}
	tests := []struct {
		name, revision string
		files          []string
		wantCommit     string
		wantErr        error
	}{
		{"whole snapshot", "main", nil, commitA, nil},
		{"pull request ref", "refs/pr/7", []string{"config.json"}, commitB, nil},
		{"commit sha", commitB, []string{"config.json"}, commitB, nil},
		{"file not in that snapshot", "refs/pr/7", []string{"xgb/model.json"}, "", ErrOffline},
		{"unknown branch", "dev", nil, "", ErrOffline},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, commit, err := c.Snapshot(ctx, "acme/leads", tc.revision, tc.files)
			if !errors.Is(err, tc.wantErr) || commit != tc.wantCommit {
				t.Fatalf("got %s, %v; want %s, %v", commit, err, tc.wantCommit, tc.wantErr)
			}
		})
	}
	if _, err := c.RepoInfo(ctx, "acme/leads", "main"); !errors.Is(err, ErrOffline) {
		t.Fatalf("RepoInfo offline: %v", err)
	}
}

func TestOurCacheServesOfflineAndWhenUnreachable(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	files := []string{"config.json", "onnx/model.onnx"}
	want, _, err := newTestClient(t, hub.URL(), cache, "").Snapshot(context.Background(), "acme/public", "refs/pr/1", files)
	if err != nil {
		t.Fatal(err)
	}
	offline, err := New(Options{CacheDir: cache, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	hub.Close()
	unreachable := newTestClient(t, hub.URL(), cache, "")
	for name, c := range map[string]*Client{"offline": offline, "unreachable": unreachable} {
		dir, commit, err := c.Snapshot(context.Background(), "acme/public", "refs/pr/1", files)
		if err != nil || dir != want || commit != commitB {
			t.Errorf("%s: got %s %s %v", name, dir, commit, err)
		}
	}
	if _, err := unreachable.Whoami(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Whoami on a closed endpoint: %v, want ErrUnreachable", err)
	}
	if _, _, err := unreachable.Snapshot(context.Background(), "acme/public", "main", files); !errors.Is(err, ErrUnreachable) {
		t.Errorf("uncached revision on a closed endpoint: %v, want ErrUnreachable", err)
	}
}

func TestPrivateRepoTokenNeverReachesTheCDN(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	c := newTestClient(t, hub.URL(), t.TempDir(), goodToken)
	dir, _, err := c.Snapshot(context.Background(), "acme/private", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "weights.bin")) != string(privateRepo.Files["weights.bin"]) {
		t.Fatal("wrong weights")
	}
	authorized := 0
	for _, r := range hub.Requests() {
		if r.Authorized {
			authorized++
		}
	}
	if hub.Downloads("acme/private", "weights.bin") != 1 || authorized == 0 {
		t.Fatalf("weights downloads %d, authorized Hub requests %d", hub.Downloads("acme/private", "weights.bin"), authorized)
	}
	// The CDN handler fails the test itself if it sees Authorization.
}

func TestHubErrorsMapToSentinels(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	tests := []struct {
		name, token, repo, revision string
		files                       []string
		want                        error
		status                      int
	}{
		{"private without token", "", "acme/private", "main", nil, ErrRepoNotFound, 401},
		{"private with revoked token", badToken, "acme/private", "main", nil, ErrInvalidToken, 401},
		{"public with revoked token", badToken, "acme/public", "main", nil, ErrInvalidToken, 401},
		{"missing repo anonymous", "", "acme/nope", "main", nil, ErrRepoNotFound, 401},
		{"missing repo with token", goodToken, "acme/nope", "main", nil, ErrRepoNotFound, 404},
		{"gated without token", "", "acme/gated", "main", nil, ErrGatedRepo, 401},
		{"gated not granted", goodToken, "acme/gated", "main", nil, ErrGatedRepo, 403},
		{"missing revision", "", "acme/public", "v9", nil, ErrRevisionNotFound, 404},
		{"missing file", goodToken, "acme/public", "main", []string{"model.pkl"}, ErrEntryNotFound, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, hub.URL(), t.TempDir(), tc.token)
			_, _, err := c.Snapshot(context.Background(), tc.repo, tc.revision, tc.files)
			assertNoToken(t, err)
			var he *HTTPError
			if !errors.Is(err, tc.want) || !errors.As(err, &he) || he.StatusCode != tc.status {
				t.Fatalf("got %v, want %v with status %d", err, tc.want, tc.status)
			}
		})
	}
	t.Run("whoami", func(t *testing.T) {
		t.Parallel()
		for _, tok := range []string{"", badToken} {
			_, err := newTestClient(t, hub.URL(), t.TempDir(), tok).Whoami(context.Background())
			assertNoToken(t, err)
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("whoami with a %d-byte token: %v, want ErrInvalidToken", len(tok), err)
			}
		}
		id, err := newTestClient(t, hub.URL(), t.TempDir(), goodToken).Whoami(context.Background())
		if err != nil || id != (Identity{Name: hubtest.User, Type: "user", TokenName: hubtest.TokenName, TokenRole: "read"}) {
			t.Errorf("whoami: %+v, %v", id, err)
		}
	})
}

func assertNoToken(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, tok := range []string{goodToken, badToken} {
		if strings.Contains(err.Error(), tok) {
			t.Fatal("error text contains a token")
		}
	}
}

func TestRetriesHonourRetryAfterThenSucceed(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	c := newTestClient(t, hub.URL(), t.TempDir(), "")
	var mu sync.Mutex
	var waits []time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return nil
	}
	model := publicRepo.Files["model.json"]
	hub.Fail("GET /api/models/acme/public/revision/main", http.StatusTooManyRequests)
	hub.Fail("HEAD /acme/public/resolve/"+commitA+"/model.json", http.StatusInternalServerError)
	hub.Fail("GET "+hub.CDNPath("acme/public", "model.json"), http.StatusBadGateway)

	dir, _, err := c.Snapshot(context.Background(), "acme/public", "main", []string{"model.json"})
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "model.json")) != string(model) {
		t.Fatal("wrong content after retries")
	}
	if len(waits) != 3 || waits[0] != 3*time.Second {
		t.Fatalf("waits %v: want 3, the first one the server's Retry-After of 3s", waits)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	c := newTestClient(t, hub.URL(), t.TempDir(), "")
	hub.Fail("GET /api/models/acme/public/revision/main", 500, 503, 500, 500, 500)
	_, _, err := c.Snapshot(context.Background(), "acme/public", "main", nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 500 {
		t.Fatalf("got %v, want the last 500", err)
	}
	if n := hub.Pending("GET /api/models/acme/public/revision/main"); n != 1 {
		t.Fatalf("%d queued failures left, want 1 (4 attempts)", n)
	}
}

func TestPullRequestRevisionIsEscaped(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	c := newTestClient(t, hub.URL(), cache, "")
	_, commit, err := c.Snapshot(context.Background(), "acme/public", "refs/pr/1", []string{"config.json"})
	if err != nil || commit != commitB {
		t.Fatalf("got %s, %v", commit, err)
	}
	want := hubtest.Request{Method: http.MethodGet, Path: "/api/models/acme/public/revision/refs%2Fpr%2F1"}
	if !slices.Contains(hub.Requests(), want) {
		t.Fatalf("revision not sent as one escaped segment: %v", hub.Requests())
	}
	if got := readFile(t, filepath.Join(cache, "models--acme--public", "refs", "refs", "pr", "1")); got != commitB {
		t.Fatalf("refs/refs/pr/1 = %q", got)
	}
}

func TestRenamedRepoFollowsSameHostRedirect(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	c := newTestClient(t, hub.URL(), cache, "")
	dir, _, err := c.Snapshot(context.Background(), "acme/old-name", "main", []string{"config.json", "model.json"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(cache, "models--acme--old-name")) {
		t.Fatalf("snapshot under %s, want the requested repo's folder", dir)
	}
	if readFile(t, filepath.Join(dir, "model.json")) != string(publicRepo.Files["model.json"]) {
		t.Fatal("wrong content")
	}
}

func TestChecksumMismatchLeavesNoBlob(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	c := newTestClient(t, hub.URL(), cache, "")
	hub.Corrupt("acme/public", "model.json")
	_, _, err := c.Snapshot(context.Background(), "acme/public", "main", []string{"model.json"})
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("got %v, want a sha256 mismatch", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(cache, "models--acme--public", "blobs"))
	if len(blobs) != 0 {
		t.Fatalf("blobs left behind: %v", blobs)
	}
}

// TestConcurrentSnapshotsDownloadOnce runs 100 first requests for an uncached
// repo through two clients sharing a cache, as two workers on one host would:
// each file must cross the wire once.
func TestConcurrentSnapshotsDownloadOnce(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	clients := []*Client{newTestClient(t, hub.URL(), cache, ""), newTestClient(t, hub.URL(), cache, "")}
	var wg sync.WaitGroup
	errs := make([]error, 100)
	dirs := make([]string, 100)
	for i := range errs {
		wg.Go(func() {
			dirs[i], _, errs[i] = clients[i%2].Snapshot(context.Background(), "acme/public", "main", nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || dirs[i] != dirs[0] {
			t.Fatalf("call %d: %s, %v", i, dirs[i], err)
		}
	}
	for name := range publicRepo.Files {
		if n := hub.Downloads("acme/public", name); n != 1 {
			t.Errorf("%s downloaded %d times, want 1", name, n)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, "models--acme--public", "*", "*.*tmp*"))
	incomplete, _ := filepath.Glob(filepath.Join(cache, "models--acme--public", "blobs", "*.incomplete"))
	if len(leftovers)+len(incomplete) != 0 {
		t.Fatalf("temporary files left: %v %v", leftovers, incomplete)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want Options
	}{
		{"defaults", map[string]string{"HOME": "/home/w"}, Options{CacheDir: "/home/w/.cache/huggingface/hub"}},
		{"XDG", map[string]string{"HOME": "/home/w", "XDG_CACHE_HOME": "/xdg"}, Options{CacheDir: "/xdg/huggingface/hub"}},
		{"HF_HOME", map[string]string{"HF_HOME": "/data/hf"}, Options{CacheDir: "/data/hf/hub"}},
		{"HF_HUB_CACHE wins", map[string]string{"HF_HOME": "/data/hf", "HF_HUB_CACHE": "/models"}, Options{CacheDir: "/models"}},
		{"offline and endpoint", map[string]string{"HF_HUB_CACHE": "/m", "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://mirror:8080"},
			Options{CacheDir: "/m", Offline: true, Endpoint: "http://mirror:8080"}},
		{"offline spelled true", map[string]string{"HF_HUB_CACHE": "/m", "HF_HUB_OFFLINE": "true"}, Options{CacheDir: "/m", Offline: true}},
		{"offline 0", map[string]string{"HF_HUB_CACHE": "/m", "HF_HUB_OFFLINE": "0"}, Options{CacheDir: "/m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := OptionsFromEnv(func(k string) string { return tc.env[k] })
			if diff := cmp.Diff(tc.want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Token" }, cmp.Ignore())); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestStalledDownloadIsAbandonedAndRetried(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	c := newTestClient(t, hub.URL(), t.TempDir(), "")
	// Long enough for loopback requests on a loaded machine, short enough
	// for the stalled one not to slow the suite down much.
	c.opts.RequestTimeout = 250 * time.Millisecond
	model, cdnKey := publicRepo.Files["model.json"], "GET "+hub.CDNPath("acme/public", "model.json")
	hub.Fail(cdnKey, hubtest.Stall)
	dir, _, err := c.Snapshot(context.Background(), "acme/public", "main", []string{"model.json"})
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "model.json")) != string(model) {
		t.Fatal("wrong content after a stalled transfer")
	}
	if hub.Pending(cdnKey) != 0 {
		t.Fatal("the stalled answer was never served")
	}
}

func TestLockFileExcludesOtherHolders(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".locks", "models--a--b", "x.lock")
	unlock, err := lockFile(context.Background(), path, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := lockFile(ctx, path, time.Millisecond)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("second holder got %v while the lock was held", err)
	}
	unlock()
	unlock2, err := lockFile(context.Background(), path, time.Millisecond)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
}

func TestPinnedCommitServedFromCacheWithoutTheHub(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	cache := t.TempDir()
	c := newTestClient(t, hub.URL(), cache, "")
	files := []string{"config.json", "model.json"}
	want, _, err := c.Snapshot(context.Background(), "acme/public", commitA, files)
	if err != nil {
		t.Fatal(err)
	}
	seen := len(hub.Requests())
	dir, commit, err := c.Snapshot(context.Background(), "acme/public", commitA, files)
	if err != nil || dir != want || commit != commitA {
		t.Fatalf("got %s %s %v", dir, commit, err)
	}
	if n := len(hub.Requests()); n != seen {
		t.Fatalf("%d Hub requests for a cached commit, want 0", n-seen)
	}
	if _, err := os.Stat(filepath.Join(cache, "models--acme--public", "refs")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a commit sha must not get a refs entry: %v", err)
	}
}

func BenchmarkSnapshotCachedCommit(b *testing.B) {
	hub := newHub(b)
	c, err := New(Options{Endpoint: hub.URL(), CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	files := []string{"config.json", "model.json", "onnx/model.onnx"}
	ctx := context.Background()
	if _, _, err := c.Snapshot(ctx, "acme/public", commitA, files); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := c.Snapshot(ctx, "acme/public", commitA, files); err != nil {
			b.Fatal(err)
		}
	}
}

// TestErrorsNeverCarryTheToken talks to a server that echoes the credentials
// in its error messages, which the real Hub has no reason not to do one day.
func TestErrorsNeverCarryTheToken(t *testing.T) {
	t.Parallel()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := "Invalid credentials in Authorization header: " + r.Header.Get("Authorization")
		w.Header().Set("X-Error-Message", msg)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, `{"error": %q}`, msg)
	}))
	t.Cleanup(echo.Close)
	c := newTestClient(t, echo.URL, t.TempDir(), badToken)
	_, _, err := c.Snapshot(context.Background(), "acme/private", "main", nil)
	assertNoToken(t, err)
	_, err = c.Whoami(context.Background())
	assertNoToken(t, err)
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("got %v, want ErrInvalidToken", err)
	}
}
