package hub

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	goodToken = "hf_goodTokenValue0123456789abcdef"
	badToken  = "hf_revokedTokenValue9876543210zyxw"
	commitA   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

type fakeFile struct {
	content []byte
	lfs     bool // served from the CDN host after a 302
}

type fakeRepo struct {
	private bool
	gated   bool
	refs    map[string]string // branch, tag or refs/pr/N -> commit
	files   map[string]fakeFile
}

// fakeHub is two hosts on loopback: the Hub (API, resolve) and its CDN. It
// answers the way huggingface.co does, including its error headers.
type fakeHub struct {
	t        testing.TB
	api, cdn *httptest.Server
	repos    map[string]*fakeRepo
	renamed  map[string]string // old repo id -> current id

	mu        sync.Mutex
	downloads map[string]int   // content sha256 -> GETs that served the bytes
	faults    map[string][]int // "METHOD escaped-path" -> statuses to answer first
	corrupt   map[string]bool  // content sha256 -> CDN flips a byte
	paths     []string         // escaped paths seen on the Hub host
	authSeen  int              // Hub-host requests that carried a token
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// gitBlobSHA1 is the etag the Hub gives a file stored in git (not LFS).
func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (f fakeFile) etag() string {
	if f.lfs {
		return sha256Hex(f.content)
	}
	return gitBlobSHA1(f.content)
}

func newFakeHub(t testing.TB) *fakeHub {
	t.Helper()
	model := []byte(strings.Repeat(`{"tree":[1,2,3]}`, 512))
	onnx := []byte(strings.Repeat("\x08\x07onnx", 300))
	weights := []byte(strings.Repeat("private-weights", 200))
	f := &fakeHub{
		t: t,
		repos: map[string]*fakeRepo{
			"acme/public": {
				refs: map[string]string{"main": commitA, "v1.0": commitA, "refs/pr/1": commitB},
				files: map[string]fakeFile{
					"config.json":        {content: []byte(`{"hokusai":{"task":"lead-scoring"}}`)},
					"model.json":         {content: model, lfs: true},
					"onnx/model.onnx":    {content: onnx, lfs: true},
					"README with a #.md": {content: []byte("# readme\n")},
				},
			},
			"acme/private": {private: true, refs: map[string]string{"main": commitA}, files: map[string]fakeFile{
				"config.json": {content: []byte(`{"private":true}`)},
				"weights.bin": {content: weights, lfs: true},
			}},
			"acme/gated": {gated: true, refs: map[string]string{"main": commitA}, files: map[string]fakeFile{
				"config.json": {content: []byte(`{}`)},
			}},
		},
		renamed:   map[string]string{"acme/old-name": "acme/public"},
		downloads: map[string]int{},
		faults:    map[string][]int{},
		corrupt:   map[string]bool{},
	}
	// The Hub's handlers read f.cdn.URL: start the CDN first.
	f.api = httptest.NewUnstartedServer(http.HandlerFunc(f.serveHub))
	f.cdn = httptest.NewUnstartedServer(http.HandlerFunc(f.serveCDN))
	f.cdn.Start()
	f.api.Start()
	t.Cleanup(f.api.Close)
	t.Cleanup(f.cdn.Close)
	return f
}

// stall, queued with fail, answers a body that stops mid-way.
const stall = -1

// fail makes the next requests to "METHOD escaped-path" answer statuses, in order.
func (f *fakeHub) fail(key string, statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[key] = append(f.faults[key], statuses...)
}

func (f *fakeHub) downloadsOf(repo, file string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downloads[sha256Hex(f.repos[repo].files[file].content)]
}

// pending is how many queued failures for key are still unanswered.
func (f *fakeHub) pending(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.faults[key])
}

func (f *fakeHub) authCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authSeen
}

func (f *fakeHub) seenPaths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

// injectFault answers a queued failure, if any, and reports whether it did.
func (f *fakeHub) injectFault(w http.ResponseWriter, r *http.Request) bool {
	key := r.Method + " " + r.URL.EscapedPath()
	f.mu.Lock()
	q := f.faults[key]
	if len(q) == 0 {
		f.mu.Unlock()
		return false
	}
	status := q[0]
	f.faults[key] = q[1:]
	f.mu.Unlock()
	if status == stall {
		// Send the headers and a few bytes, then go quiet until the client
		// gives up on this request.
		w.Header().Set("Content-Length", "1000000")
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "3")
	}
	hubError(w, status, "", "injected failure")
	return true
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("X-Request-Id", "Root=1-fake")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (f *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	f.mu.Lock()
	f.paths = append(f.paths, path)
	if r.Header.Get("Authorization") != "" {
		f.authSeen++
	}
	f.mu.Unlock()
	if f.injectFault(w, r) {
		return
	}
	auth := r.Header.Get("Authorization")
	if auth != "" && auth != "Bearer "+goodToken {
		// Echo the credentials back: the client must scrub them from errors.
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header: "+auth)
		return
	}
	if path == "/api/whoami-v2" {
		if auth == "" {
			hubError(w, http.StatusUnauthorized, "", "Invalid username or password.")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "user", "name": "hokusai-bot",
			"auth": map[string]any{"type": "access_token", "accessToken": map[string]string{"displayName": "worker", "role": "read"}}})
		return
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	api := segs[0] == "api" && len(segs) > 1 && segs[1] == "models"
	if api {
		segs = segs[2:]
	}
	if len(segs) < 4 {
		hubError(w, http.StatusNotFound, "", "Not Found")
		return
	}
	repoID := segs[0] + "/" + segs[1]
	if to, ok := f.renamed[repoID]; ok {
		// Relative, same-host redirect, as the Hub does for renamed repos.
		w.Header().Set("Location", strings.Replace(path, "/"+repoID+"/", "/"+to+"/", 1))
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	repo, ok := f.repos[repoID]
	switch {
	case !ok && auth == "", ok && repo.private && auth == "":
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return
	case !ok:
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return
	case repo.gated && auth == "":
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to model "+repoID+" is restricted. You must be authenticated to access it.")
		return
	case repo.gated:
		hubError(w, http.StatusForbidden, "GatedRepo", "Access to model "+repoID+" is restricted and you are not in the authorized list.")
		return
	}
	rev, err := url.PathUnescape(segs[3])
	commit, known := repo.refs[rev]
	if !known && (rev == commitA || rev == commitB) {
		commit, known = rev, true
	}
	if err != nil || !known {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	switch {
	case api && segs[2] == "revision" && len(segs) == 4 && r.Method == http.MethodGet:
		f.serveInfo(w, repoID, repo, commit)
	case !api && segs[2] == "resolve" && len(segs) >= 5:
		file, err := url.PathUnescape(strings.Join(segs[4:], "/"))
		f.serveResolve(w, r, repo, commit, file, err == nil)
	default:
		hubError(w, http.StatusNotFound, "", "Not Found")
	}
}

func (f *fakeHub) serveInfo(w http.ResponseWriter, id string, repo *fakeRepo, commit string) {
	var siblings []map[string]string
	for name := range repo.files {
		siblings = append(siblings, map[string]string{"rfilename": name})
	}
	gated := any(false)
	if repo.gated {
		gated = "manual"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": id, "modelId": id, "sha": commit, "private": repo.private, "gated": gated,
		"siblings": siblings, "lastModified": "2026-11-20T10:00:00.000Z",
	})
}

func (f *fakeHub) serveResolve(w http.ResponseWriter, r *http.Request, repo *fakeRepo, commit, name string, ok bool) {
	file, exists := repo.files[name]
	if !ok || !exists {
		hubError(w, http.StatusNotFound, "EntryNotFound", name+" does not exist on \""+commit+"\"")
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", commit)
	if file.lfs {
		h.Set("ETag", `"`+gitBlobSHA1([]byte("version https://git-lfs.github.com/spec/v1\noid sha256:"+file.etag()))+`"`)
		h.Set("X-Linked-Etag", `"`+file.etag()+`"`)
		h.Set("X-Linked-Size", fmt.Sprint(len(file.content)))
		h.Set("Location", f.cdn.URL+"/repos/ab/cd/"+file.etag()+"?X-Amz-Signature=deadbeef&X-Amz-Expires=3600&response-content-disposition=inline")
		w.WriteHeader(http.StatusFound)
		return
	}
	h.Set("ETag", `W/"`+file.etag()+`"`)
	h.Set("Content-Length", fmt.Sprint(len(file.content)))
	if r.Method == http.MethodGet {
		f.mu.Lock()
		f.downloads[sha256Hex(file.content)]++
		f.mu.Unlock()
		_, _ = w.Write(file.content)
	}
}

func (f *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	if a := r.Header.Get("Authorization"); a != "" {
		f.t.Errorf("CDN got an Authorization header on %s", r.URL.Path)
		http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
		return
	}
	if r.URL.Query().Get("X-Amz-Signature") == "" {
		http.Error(w, "missing signature", http.StatusForbidden)
		return
	}
	if f.injectFault(w, r) {
		return
	}
	sum := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	for _, repo := range f.repos {
		for _, file := range repo.files {
			if !file.lfs || file.etag() != sum {
				continue
			}
			body := slices.Clone(file.content)
			f.mu.Lock()
			f.downloads[sum]++
			if f.corrupt[sum] {
				body[0] ^= 0xff
			}
			f.mu.Unlock()
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body)
			return
		}
	}
	http.Error(w, "NoSuchKey", http.StatusNotFound)
}
