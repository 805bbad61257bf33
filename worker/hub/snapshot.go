package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// parallelFiles bounds concurrent file downloads within one Snapshot.
const parallelFiles = 4

// Snapshot makes files of repo at revision (all files when nil) present in
// the cache and returns the snapshot folder and the commit sha. Paths in the
// folder are the repo's paths. revision defaults to "main".
//
// Online, it asks the Hub for the commit, downloads what the snapshot lacks
// and records refs/{revision}; a commit sha whose listed files are all cached
// is served without asking. Offline, or when the Hub is unreachable, it
// serves a cached snapshot that holds every requested file.
func (c *Client) Snapshot(ctx context.Context, repo, revision string, files []string) (dir, commit string, err error) {
	if revision == "" {
		revision = "main"
	}
	if err := c.validSnapshotArgs(repo, revision, files); err != nil {
		return "", "", err
	}
	if c.opts.Offline {
		dir, commit, err := c.fromCache(repo, revision, files)
		if err != nil {
			return "", "", fmt.Errorf("snapshot %s@%s: %w", repo, revision, err)
		}
		return dir, commit, nil
	}
	if commitRe.MatchString(revision) && files != nil {
		// A commit never changes: if its files are cached, the Hub has
		// nothing to add.
		if dir, commit, err := c.fromCache(repo, revision, files); err == nil {
			return dir, commit, nil
		}
	}
	info, err := c.RepoInfo(ctx, repo, revision)
	if errors.Is(err, ErrUnreachable) {
		if dir, commit, cerr := c.fromCache(repo, revision, files); cerr == nil {
			return dir, commit, nil
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("snapshot %s@%s: %w", repo, revision, err)
	}
	if files == nil {
		files = info.Files
		if err := c.validSnapshotArgs(repo, revision, files); err != nil {
			return "", "", err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelFiles)
	for _, f := range files {
		g.Go(func() error { return c.fetchFile(gctx, repo, info.SHA, f) })
	}
	if err := g.Wait(); err != nil {
		return "", "", fmt.Errorf("snapshot %s@%s: %w", repo, revision, err)
	}
	if revision != info.SHA {
		if err := c.writeRef(repo, revision, info.SHA); err != nil {
			return "", "", fmt.Errorf("snapshot %s@%s: record ref: %w", repo, revision, err)
		}
	}
	return c.snapshotDir(repo, info.SHA), info.SHA, nil
}

func (c *Client) validSnapshotArgs(repo, revision string, files []string) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	if err := validRelPath("revision", revision); err != nil {
		return err
	}
	for _, f := range files {
		if err := validRelPath("file", f); err != nil {
			return fmt.Errorf("%s: %w", repo, err)
		}
	}
	return nil
}

func (c *Client) writeRef(repo, revision, commit string) error {
	path := c.refPath(repo, revision)
	if b, err := os.ReadFile(path); err == nil && string(b) == commit {
		return nil
	}
	return writeAtomic(path, []byte(commit))
}

// fileMeta is what HEAD on a resolve URL tells about one file.
type fileMeta struct {
	commit   string // X-Repo-Commit
	etag     string
	size     int64  // -1 when the Hub did not say
	location string // where to GET it: the CDN for LFS files, else the resolve URL
}

// fetchFile makes snapshots/{commit}/{file} a link to a complete blob.
func (c *Client) fetchFile(ctx context.Context, repo, commit, file string) error {
	link := filepath.Join(c.snapshotDir(repo, commit), filepath.FromSlash(file))
	if _, err := os.Stat(link); err == nil {
		return nil // snapshots of a commit never change
	}
	meta, err := c.head(ctx, repo, commit, file)
	if err != nil {
		return fmt.Errorf("file %s: %w", file, err)
	}
	if meta.commit != "" && meta.commit != commit {
		return fmt.Errorf("file %s: the Hub resolved commit %s to %s", file, commit, meta.commit)
	}
	blob := c.blobPath(repo, meta.etag)
	if _, err := os.Stat(blob); err != nil {
		if err := c.downloadOnce(ctx, repo, meta, blob); err != nil {
			return fmt.Errorf("file %s: %w", file, err)
		}
	}
	if err := linkBlob(link, blob); err != nil {
		return fmt.Errorf("file %s: link snapshot: %w", file, err)
	}
	return nil
}

// head asks HEAD {endpoint}/{repo}/resolve/{revision}/{file}, stopping at a
// redirect to another host.
func (c *Client) head(ctx context.Context, repo, revision, file string) (fileMeta, error) {
	u := c.resolveURL(repo, revision, file)
	m := fileMeta{size: -1, location: u}
	err := c.do(ctx, http.MethodHead, u, false, func(resp *http.Response) error {
		h := resp.Header
		m.commit = h.Get("X-Repo-Commit")
		m.etag = normalizeETag(h.Get("X-Linked-Etag"))
		if m.etag == "" {
			m.etag = normalizeETag(h.Get("ETag"))
		}
		if !etagRe.MatchString(m.etag) {
			return fmt.Errorf("HEAD %s: no usable ETag in the answer", u)
		}
		if s, err := strconv.ParseInt(h.Get("X-Linked-Size"), 10, 64); err == nil {
			m.size = s
		} else if resp.StatusCode == http.StatusOK {
			m.size = resp.ContentLength
		}
		if isRedirect(resp.StatusCode) {
			loc, err := resp.Location()
			if err != nil {
				return fmt.Errorf("HEAD %s: redirect without a usable Location: %w", u, err)
			}
			m.location = loc.String()
		}
		return nil
	})
	return m, err
}

// normalizeETag drops the weak marker and quotes: W/"abc" -> abc.
func normalizeETag(v string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(v), "W/"), `"`)
}

// downloadOnce downloads blob at most once per process at a time; callers
// for the same blob share the result. If the goroutine doing the download is
// cancelled, the others try again with their own context.
func (c *Client) downloadOnce(ctx context.Context, repo string, meta fileMeta, blob string) error {
	for {
		ch := c.blobs.DoChan(blob, func() (any, error) {
			return nil, c.download(ctx, repo, meta, blob)
		})
		select {
		case res := <-ch:
			if res.Err != nil && ctx.Err() == nil && errors.Is(res.Err, context.Canceled) {
				continue
			}
			return res.Err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// download fetches meta.location into blob under the blob's file lock,
// through blob.incomplete, checking size and (for LFS) sha256.
func (c *Client) download(ctx context.Context, repo string, meta fileMeta, blob string) error {
	unlock, err := lockFile(ctx, c.lockPath(repo, meta.etag), c.lockPoll)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(blob); err == nil {
		return nil // another process finished it while we waited
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	incomplete := blob + ".incomplete"
	err = c.do(ctx, http.MethodGet, meta.location, true, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: unexpected status %s", stripQuery(meta.location), resp.Status)
		}
		return writeVerified(incomplete, resp.Body, meta)
	})
	if err != nil {
		os.Remove(incomplete)
		return err
	}
	return os.Rename(incomplete, blob)
}

// writeVerified writes body to path, then checks the size the Hub announced
// and, when the etag is a sha256 (LFS), the digest. A mismatch is retried:
// it is most likely a transfer gone wrong.
func writeVerified(path string, body io.Reader, meta fileMeta) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if meta.size >= 0 && n != meta.size {
		return &retryable{err: fmt.Errorf("got %d bytes, the Hub announced %d", n, meta.size)}
	}
	if sha256Re.MatchString(meta.etag) {
		if sum := hex.EncodeToString(h.Sum(nil)); sum != meta.etag {
			return &retryable{err: fmt.Errorf("sha256 %s does not match the Hub's %s", sum, meta.etag)}
		}
	}
	return nil
}
