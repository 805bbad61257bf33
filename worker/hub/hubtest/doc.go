// Package hubtest is a loopback fake of the HuggingFace Hub for tests, the way
// net/http/httptest is a fake web server: it speaks the protocol huggingface.co
// speaks, so a client that works against it works against the real Hub.
//
// New starts two hosts on 127.0.0.1, closed when the test ends: the Hub
// (URL, what HF_ENDPOINT points at) and the CDN that serves LFS files. The Hub
// answers
//
//   - GET  /api/whoami-v2: 200 with the identity for a token given to
//     SetTokens; 401 {"error": "Invalid credentials in Authorization header"}
//     for any other token, 401 without one.
//   - GET  /api/models/{repo}/revision/{rev}: id, sha, private, gated, siblings.
//   - HEAD and GET /{repo}/resolve/{rev}/{file}: X-Repo-Commit and ETag; for
//     an LFS file a 302 to the CDN with X-Linked-Etag and X-Linked-Size.
//
// Revisions are branches, tags, refs/pr/N (escaped as one path segment) or
// commit shas. Errors carry X-Error-Code and X-Error-Message as the Hub's do:
// a private repo, or one that does not exist, is 401 RepoNotFound without a
// valid token (404 with one); a gated repo is 401 GatedRepo anonymously and
// 403 GatedRepo for a token it was not granted to; an unknown revision is
// RevisionNotFound and an unknown file EntryNotFound. A repo's former ids
// redirect, on the Hub's host, to the current one. The CDN fails the test if
// a request reaches it with an Authorization header, and wants the signed URL
// the Hub gave out.
//
// Fail queues 429s, 5xx or a stalled body for a path; Downloads counts the
// GETs that served a file's bytes; Corrupt flips a byte on the way out;
// Requests lists what reached the Hub host. Everything is safe for concurrent
// use, and repos and tokens can change while clients run (token rotation,
// revocation).
//
// A test of a client of a private repo:
//
//	s := hubtest.New(t)
//	s.SetTokens("hf_worker")
//	s.AddRepo(hubtest.Repo{
//		ID:      "acme/leads",
//		Private: true,
//		Files:   map[string][]byte{"config.json": cfg, "model.json": model},
//		LFS:     []string{"model.json"},
//	})
//	// point the client at s.URL() (HF_ENDPOINT) with token "hf_worker";
//	// s.SetTokens() later revokes it
//
// It is test support: it must never be imported by non-test code, and it
// must not import the hub client it exists to test (worker/hub), so that
// package's own tests can use it.
package hubtest
