package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Who every valid token belongs to, as whoami-v2 tells it.
const (
	User      = "hokusai-bot" // "name"
	TokenName = "worker"      // "auth.accessToken.displayName"; the role is "read"
)

// Stall, queued with Fail, answers headers and a few bytes of a body, then
// nothing until the client gives up on the request.
const Stall = -1

// invalidCredentials is the Hub's message for a token it does not know.
const invalidCredentials = "Invalid credentials in Authorization header"

// Repo is a model repo on the fake Hub.
type Repo struct {
	ID        string            // "org/name"
	Private   bool              // readable only with a valid token
	Gated     bool              // readable only with a valid token listed in Granted
	Granted   []string          // tokens whose user was granted the gated repo
	Files     map[string][]byte // path in the repo ("onnx/model.onnx") -> contents
	LFS       []string          // files stored in LFS: resolve redirects them to the CDN
	Revisions map[string]string // branch, tag or refs/pr/N -> commit sha; nil: "main" -> a sha derived from ID
	FormerIDs []string          // ids the repo was renamed from: they redirect to ID
}

// Request is one request that reached the Hub host.
type Request struct {
	Method     string
	Path       string // escaped, as sent
	Authorized bool   // it carried an Authorization header
}

// repo is a Repo as served: copied, so the caller's maps can change.
type repo struct {
	Repo
	lfs     map[string]bool
	granted map[string]bool
	commits map[string]bool
	cdnDir  string // the CDN path holding its LFS files
}

// Server is a fake Hub and its CDN. Create it with New.
type Server struct {
	t        testing.TB
	hub, cdn *httptest.Server

	mu        sync.Mutex
	repos     map[string]*repo
	renamed   map[string]string // former id -> current id
	tokens    map[string]bool
	downloads map[string]int   // repo id + "\x00" + file -> GETs that served the bytes
	faults    map[string][]int // "METHOD escaped-path" -> statuses to answer first
	corrupt   map[string]bool  // repo id + "\x00" + file
	requests  []Request
}

// New starts the Hub and its CDN, with no repos and no valid tokens; both
// close when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		repos:     map[string]*repo{},
		renamed:   map[string]string{},
		tokens:    map[string]bool{},
		downloads: map[string]int{},
		faults:    map[string][]int{},
		corrupt:   map[string]bool{},
	}
	// The Hub's handlers read s.cdn.URL: start the CDN first.
	s.cdn = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	s.hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	t.Cleanup(s.Close)
	return s
}

// URL is the Hub's endpoint, what HF_ENDPOINT or hub.Options.Endpoint take.
// It stays the same after Close, pointing at nothing.
func (s *Server) URL() string { return s.hub.URL }

// Close shuts both hosts down, waiting for requests in flight; clients then
// find the Hub unreachable. It is safe to call more than once.
func (s *Server) Close() {
	s.hub.Close()
	s.cdn.Close()
}

// AddRepo adds r, or replaces the repo with its ID. It panics on an ID that
// is not "org/name", an LFS name not in Files or a commit sha that is not 40
// hex digits, which are mistakes in the test.
func (s *Server) AddRepo(r Repo) {
	org, name, ok := strings.Cut(r.ID, "/")
	if !ok || org == "" || name == "" || strings.Contains(name, "/") {
		panic(fmt.Sprintf("hubtest: repo id %q is not org/name", r.ID))
	}
	r.Files = maps.Clone(r.Files)
	r.Revisions = maps.Clone(r.Revisions)
	if r.Revisions == nil {
		r.Revisions = map[string]string{"main": gitBlobSHA1([]byte(r.ID))}
	}
	cdn := sha256Hex([]byte(r.ID))
	sr := &repo{Repo: r, lfs: map[string]bool{}, granted: map[string]bool{}, commits: map[string]bool{},
		cdnDir: "/repos/" + cdn[:2] + "/" + cdn[2:4] + "/" + cdn + "/"}
	for _, f := range r.LFS {
		if _, ok := r.Files[f]; !ok {
			panic(fmt.Sprintf("hubtest: repo %s: LFS file %q is not in Files", r.ID, f))
		}
		sr.lfs[f] = true
	}
	for _, tok := range r.Granted {
		sr.granted[tok] = true
	}
	for ref, commit := range r.Revisions {
		if len(commit) != 40 || strings.Trim(commit, "0123456789abcdef") != "" {
			panic(fmt.Sprintf("hubtest: repo %s: %s -> %q is not a commit sha", r.ID, ref, commit))
		}
		sr.commits[commit] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[r.ID] = sr
	for _, old := range r.FormerIDs {
		s.renamed[old] = r.ID
	}
}

// SetTokens makes valid the only tokens the Hub accepts, from now on: call it
// again to rotate or revoke. No arguments: every token is rejected.
func (s *Server) SetTokens(valid ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]bool{}
	for _, tok := range valid {
		s.tokens[tok] = true
	}
}

// Downloads is how many GETs served the bytes of file in repo, from the Hub
// (git files) or the CDN (LFS files); HEADs and failures do not count.
func (s *Server) Downloads(repo, file string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downloads[repo+"\x00"+file]
}

// Fail makes the next requests for key, "METHOD escaped-path" on either host
// (e.g. "GET /api/models/org/name/revision/main", or "GET "+CDNPath(...)),
// answer statuses, in order, before the path works again. A 429 carries
// Retry-After: 3; Stall sends a body that stops.
func (s *Server) Fail(key string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[key] = append(s.faults[key], statuses...)
}

// Pending is how many failures queued by Fail for key are still unanswered.
func (s *Server) Pending(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults[key])
}

// Corrupt makes file in repo come back with its first byte flipped, while
// the Hub's headers still describe the original.
func (s *Server) Corrupt(repo, file string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[repo+"\x00"+file] = true
}

// CDNPath is the path, on the CDN host, of an LFS file of repo; "" for a file
// that is not in LFS.
func (s *Server) CDNPath(repo, file string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.repos[repo]
	if !ok || !r.lfs[file] {
		return ""
	}
	return r.cdnDir + ETag(r.Files[file], true)
}

// Requests lists, in order, the requests that reached the Hub host.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ETag is the etag the Hub gives a file, which names its blob in the cache:
// the sha256 of an LFS file's contents, the git blob sha1 of any other.
func ETag(content []byte, lfs bool) string {
	if lfs {
		return sha256Hex(content)
	}
	return gitBlobSHA1(content)
}

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// injectFault answers a queued failure, if any, and reports whether it did.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	key := r.Method + " " + r.URL.EscapedPath()
	s.mu.Lock()
	q := s.faults[key]
	if len(q) == 0 {
		s.mu.Unlock()
		return false
	}
	status := q[0]
	s.faults[key] = q[1:]
	s.mu.Unlock()
	if status == Stall {
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

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	auth := r.Header.Get("Authorization")
	tok, bearer := strings.CutPrefix(auth, "Bearer ")
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: path, Authorized: auth != ""})
	valid := bearer && s.tokens[tok]
	s.mu.Unlock()
	if s.injectFault(w, r) {
		return
	}
	if path == "/api/whoami-v2" {
		s.serveWhoami(w, auth, valid)
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
	if auth != "" && !valid {
		// The Hub turns away an unknown token before it looks at the repo.
		hubError(w, http.StatusUnauthorized, "RepoNotFound", invalidCredentials)
		return
	}
	repoID := segs[0] + "/" + segs[1]
	s.mu.Lock()
	to, renamed := s.renamed[repoID]
	repo, ok := s.repos[repoID]
	s.mu.Unlock()
	if renamed && !ok {
		// Relative, same-host redirect, as the Hub does for renamed repos.
		w.Header().Set("Location", strings.Replace(path, "/"+repoID+"/", "/"+to+"/", 1))
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	switch {
	case !valid && (!ok || repo.Private):
		hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return
	case !ok:
		hubError(w, http.StatusNotFound, "RepoNotFound", "Repository Not Found for url: "+r.URL.String()+".")
		return
	case repo.Gated && !valid:
		hubError(w, http.StatusUnauthorized, "GatedRepo", "Access to model "+repoID+" is restricted. You must be authenticated to access it.")
		return
	case repo.Gated && !repo.granted[tok]:
		hubError(w, http.StatusForbidden, "GatedRepo", "Access to model "+repoID+" is restricted and you are not in the authorized list.")
		return
	}
	rev, err := url.PathUnescape(segs[3])
	commit, known := repo.Revisions[rev]
	if !known && repo.commits[rev] {
		commit, known = rev, true
	}
	if err != nil || !known {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	switch {
	case api && segs[2] == "revision" && len(segs) == 4 && r.Method == http.MethodGet:
		serveInfo(w, repo, commit)
	case !api && segs[2] == "resolve" && len(segs) >= 5:
		file, err := url.PathUnescape(strings.Join(segs[4:], "/"))
		s.serveResolve(w, r, repo, commit, file, err == nil)
	default:
		hubError(w, http.StatusNotFound, "", "Not Found")
	}
}

func (s *Server) serveWhoami(w http.ResponseWriter, auth string, valid bool) {
	switch {
	case auth == "":
		hubError(w, http.StatusUnauthorized, "", "Invalid username or password.")
	case !valid:
		hubError(w, http.StatusUnauthorized, "", invalidCredentials)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "user", "name": User,
			"auth": map[string]any{"type": "access_token", "accessToken": map[string]string{"displayName": TokenName, "role": "read"}}})
	}
}

func serveInfo(w http.ResponseWriter, repo *repo, commit string) {
	var siblings []map[string]string
	for _, name := range slices.Sorted(maps.Keys(repo.Files)) {
		siblings = append(siblings, map[string]string{"rfilename": name})
	}
	gated := any(false)
	if repo.Gated {
		gated = "manual"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": repo.ID, "modelId": repo.ID, "sha": commit, "private": repo.Private, "gated": gated,
		"siblings": siblings, "lastModified": "2026-11-20T10:00:00.000Z",
	})
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, repo *repo, commit, name string, ok bool) {
	content, exists := repo.Files[name]
	if !ok || !exists {
		hubError(w, http.StatusNotFound, "EntryNotFound", name+" does not exist on \""+commit+"\"")
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", commit)
	if repo.lfs[name] {
		etag := ETag(content, true)
		h.Set("ETag", `"`+gitBlobSHA1([]byte("version https://git-lfs.github.com/spec/v1\noid sha256:"+etag))+`"`)
		h.Set("X-Linked-Etag", `"`+etag+`"`)
		h.Set("X-Linked-Size", fmt.Sprint(len(content)))
		h.Set("Location", s.cdn.URL+repo.cdnDir+etag+"?X-Amz-Signature=deadbeef&X-Amz-Expires=3600&response-content-disposition=inline")
		w.WriteHeader(http.StatusFound)
		return
	}
	h.Set("ETag", `W/"`+ETag(content, false)+`"`)
	h.Set("Content-Length", fmt.Sprint(len(content)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(s.served(repo.ID, name, content))
	}
}

// served counts a download of file and returns the bytes to send.
func (s *Server) served(repoID, file string, content []byte) []byte {
	key := repoID + "\x00" + file
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downloads[key]++
	if s.corrupt[key] && len(content) > 0 {
		content = slices.Clone(content)
		content[0] ^= 0xff
	}
	return content
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		s.t.Errorf("hubtest: the CDN got an Authorization header on %s", r.URL.Path)
		http.Error(w, "Only one auth mechanism allowed", http.StatusBadRequest)
		return
	}
	if r.URL.Query().Get("X-Amz-Signature") == "" {
		http.Error(w, "missing signature", http.StatusForbidden)
		return
	}
	if s.injectFault(w, r) {
		return
	}
	dir, etag := r.URL.Path[:strings.LastIndex(r.URL.Path, "/")+1], r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	s.mu.Lock()
	var repo *repo
	for _, sr := range s.repos {
		if sr.cdnDir == dir {
			repo = sr
		}
	}
	s.mu.Unlock()
	if repo != nil {
		for name := range repo.lfs {
			if content := repo.Files[name]; ETag(content, true) == etag {
				body := s.served(repo.ID, name, content)
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				_, _ = w.Write(body)
				return
			}
		}
	}
	http.Error(w, "NoSuchKey", http.StatusNotFound)
}
