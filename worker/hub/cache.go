package hub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// repoRe accepts "name" and "org/name" as the Hub names them.
	repoRe = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// etagRe keeps blob names to what the Hub sends (git sha1, sha256).
	etagRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

func validRepo(repo string) error {
	if !repoRe.MatchString(repo) || strings.Contains(repo, "--") || strings.Contains(repo, "..") {
		return fmt.Errorf("%q is not a model repo id (org/name)", repo)
	}
	return nil
}

// validRelPath accepts revisions and file names that stay inside their
// folder once used as a path (refs/pr/1, onnx/model.onnx).
func validRelPath(what, p string) error {
	if p == "" || !filepath.IsLocal(p) || strings.Contains(p, `\`) || filepath.ToSlash(filepath.Clean(p)) != p {
		return fmt.Errorf("%s %q is not a clean relative path", what, p)
	}
	return nil
}

// repoFolder is models--{org}--{name}, as huggingface_hub names it.
func repoFolder(repo string) string { return "models--" + strings.ReplaceAll(repo, "/", "--") }

func (c *Client) repoDir(repo string) string {
	return filepath.Join(c.opts.CacheDir, repoFolder(repo))
}

func (c *Client) blobPath(repo, etag string) string {
	return filepath.Join(c.repoDir(repo), "blobs", etag)
}

func (c *Client) snapshotDir(repo, commit string) string {
	return filepath.Join(c.repoDir(repo), "snapshots", commit)
}

func (c *Client) refPath(repo, revision string) string {
	return filepath.Join(c.repoDir(repo), "refs", filepath.FromSlash(revision))
}

func (c *Client) lockPath(repo, etag string) string {
	return filepath.Join(c.opts.CacheDir, ".locks", repoFolder(repo), etag+".lock")
}

// fromCache finds a snapshot holding files (or, for nil, any snapshot) for
// repo@revision without the network. A revision is looked up in refs/, and a
// commit sha is also accepted as is.
func (c *Client) fromCache(repo, revision string, files []string) (dir, commit string, err error) {
	b, err := os.ReadFile(c.refPath(repo, revision))
	switch {
	case err == nil:
		commit = strings.TrimSpace(string(b))
	case commitRe.MatchString(revision):
		commit = revision
	default:
		return "", "", fmt.Errorf("no cached ref %s for %s: %w", revision, repo, ErrOffline)
	}
	dir = c.snapshotDir(repo, commit)
	if _, err := os.Stat(dir); err != nil {
		return "", "", fmt.Errorf("no cached snapshot %s of %s: %w", commit, repo, ErrOffline)
	}
	for _, f := range files {
		// Stat follows the symlink, so a dangling link counts as missing.
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			return "", "", fmt.Errorf("%s is not cached in snapshot %s of %s: %w", f, commit, repo, ErrOffline)
		}
	}
	return dir, commit, nil
}

// writeAtomic replaces path with data through a temporary file and rename.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := tempName(path)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// linkBlob points the snapshot entry link at blob with a relative symlink
// (../../blobs/{etag} for a top-level file), replacing any older link
// atomically.
func linkBlob(link, blob string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return err
	}
	tmp := tempName(link)
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func tempName(path string) string {
	return path + ".tmp" + strconv.FormatUint(rand.Uint64(), 36)
}

// lockFile takes an exclusive flock(2) on path, polling every poll until ctx
// ends, and returns the unlock function. flock locks belong to the open file,
// so this also excludes other goroutines of this process.
func lockFile(ctx context.Context, path string, poll time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := sleepCtx(ctx, poll); err != nil {
			f.Close()
			return nil, err
		}
	}
}
