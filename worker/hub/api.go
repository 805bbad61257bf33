package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// maxAPIBody bounds a JSON answer; repos with many files list them all.
const maxAPIBody = 64 << 20

// RepoInfo is what the Hub says about a model repo at one revision.
type RepoInfo struct {
	ID      string   // canonical repo id (differs from the request for a renamed repo)
	SHA     string   // the commit the revision points to
	Private bool     // needs a token that can read it
	Gated   bool     // users must be granted access
	Files   []string // every file at that commit, paths relative to the repo root
}

// RepoInfo asks GET /api/models/{repo}/revision/{revision}.
func (c *Client) RepoInfo(ctx context.Context, repo, revision string) (RepoInfo, error) {
	if err := validRepo(repo); err != nil {
		return RepoInfo{}, err
	}
	if c.opts.Offline {
		return RepoInfo{}, fmt.Errorf("repo info %s@%s: %w", repo, revision, ErrOffline)
	}
	var raw struct {
		ID       string          `json:"id"`
		SHA      string          `json:"sha"`
		Private  bool            `json:"private"`
		Gated    json.RawMessage `json:"gated"` // false, "auto" or "manual"
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	err := c.getJSON(ctx, c.apiURL("models/"+repo+"/revision/"+url.PathEscape(revision)), &raw)
	if err != nil {
		return RepoInfo{}, fmt.Errorf("repo info %s@%s: %w", repo, revision, err)
	}
	if !commitRe.MatchString(raw.SHA) {
		return RepoInfo{}, fmt.Errorf("repo info %s@%s: answer has no commit sha", repo, revision)
	}
	info := RepoInfo{
		ID:      raw.ID,
		SHA:     raw.SHA,
		Private: raw.Private,
		Gated:   len(raw.Gated) > 0 && !bytes.Equal(raw.Gated, []byte("false")) && !bytes.Equal(raw.Gated, []byte("null")),
	}
	for _, s := range raw.Siblings {
		info.Files = append(info.Files, s.RFilename)
	}
	return info, nil
}

// Identity is the owner of a token, from /api/whoami-v2.
type Identity struct {
	Name      string // user or organization name
	Type      string // "user" or "org"
	TokenName string // the token's display name
	TokenRole string // "read", "write" or "fineGrained"
}

// Whoami checks the current token with GET /api/whoami-v2. A token the Hub
// rejects (or no token) is ErrInvalidToken; an unreachable Hub is
// ErrUnreachable, so callers can tell "bad token" from "cannot check".
func (c *Client) Whoami(ctx context.Context) (Identity, error) {
	if c.opts.Offline {
		return Identity{}, fmt.Errorf("whoami: %w", ErrOffline)
	}
	var raw struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Auth struct {
			AccessToken struct {
				DisplayName string `json:"displayName"`
				Role        string `json:"role"`
			} `json:"accessToken"`
		} `json:"auth"`
	}
	if err := c.getJSON(ctx, c.apiURL("whoami-v2"), &raw); err != nil {
		return Identity{}, fmt.Errorf("whoami: %w", err)
	}
	return Identity{
		Name:      raw.Name,
		Type:      raw.Type,
		TokenName: raw.Auth.AccessToken.DisplayName,
		TokenRole: raw.Auth.AccessToken.Role,
	}, nil
}

func (c *Client) getJSON(ctx context.Context, rawURL string, v any) error {
	return c.do(ctx, http.MethodGet, rawURL, false, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: unexpected status %s", stripQuery(rawURL), resp.Status)
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIBody)).Decode(v); err != nil {
			return fmt.Errorf("GET %s: decode answer: %w", stripQuery(rawURL), err)
		}
		return nil
	})
}
