// Package hub is a HuggingFace Hub client with the Hub's on-disk cache layout.
//
// It speaks the protocol huggingface_hub speaks:
//
//   - GET  {endpoint}/api/models/{repo}/revision/{rev}: commit sha and file list (RepoInfo)
//   - GET  {endpoint}/api/whoami-v2: is the token good (Whoami)
//   - HEAD {endpoint}/{repo}/resolve/{rev}/{file}: X-Repo-Commit, X-Linked-Etag or
//     ETag, X-Linked-Size or Content-Length. Redirects on the Hub's own host
//     (renamed repos) are followed; a redirect to another host (the CDN that
//     serves LFS files) is not, and its Location is what gets downloaded.
//   - GET of that Location, without the Authorization header when it points to
//     another host.
//
// Revisions may be branches, tags, commit shas or refs/pr/N; they are escaped
// as one path segment. Hub errors carry X-Error-Code, mapped to sentinels for
// errors.Is: ErrRepoNotFound (also a private repo the token cannot see),
// ErrGatedRepo, ErrRevisionNotFound, ErrEntryNotFound and ErrInvalidToken; the
// *HTTPError holding them has the status and the Hub's message. 429, 5xx and
// network errors are retried with exponential backoff and jitter (honouring
// Retry-After) up to Options.MaxAttempts; a request that makes no progress
// for Options.RequestTimeout is abandoned and retried. No error carries the
// token.
//
// Files land in the cache layout huggingface_hub uses, so Python and Go share
// one cache (HF_HUB_CACHE, default $HF_HOME/hub, HF_HOME default
// ~/.cache/huggingface):
//
//	models--{org}--{name}/blobs/{etag}              file contents, named by etag
//	models--{org}--{name}/snapshots/{commit}/{file} relative symlink to ../../blobs/{etag}
//	models--{org}--{name}/refs/{revision}           the commit sha the revision pointed to
//	.locks/models--{org}--{name}/{etag}.lock        flock(2) held while a blob downloads
//
// A blob is written to {etag}.incomplete and renamed into place once complete
// (and, for LFS files whose etag is a sha256, once the sha256 matches). The
// lock plus an in-process singleflight make N concurrent callers, in one or
// several processes on a host, download each blob once. With Options.Offline
// (HF_HUB_OFFLINE=1) Snapshot serves from the cache only and fails with
// ErrOffline when something is missing; when the Hub is unreachable
// (ErrUnreachable) Snapshot also falls back to a complete cached snapshot.
//
// The locking uses flock(2): the package builds on Linux and macOS, not Windows. It must never
// import api/, Redis or asynq; the token comes from a func so it can rotate.
package hub
