package s3url

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// URL is an S3 location: a bucket and a key (or, for an output, a key
// prefix that is empty or ends in "/").
type URL struct {
	Bucket, Key string
}

func (u URL) String() string { return "s3://" + u.Bucket + "/" + u.Key }

// MaxKeyBytes is S3's own limit on a key.
const MaxKeyBytes = 1024

// Parse reads an object's location, s3://bucket/key.
func Parse(raw string) (URL, error) {
	u, err := parse(raw)
	if err == nil && (u.Key == "" || strings.HasSuffix(u.Key, "/")) {
		err = fmt.Errorf("%q names no object: it needs a key after the bucket", clip(raw))
	}
	return u, err
}

// ParsePrefix reads a location to write under, s3://bucket/prefix/; the
// prefix gets its trailing "/" when it lacks one, so that the files written
// under it are a folder's.
func ParsePrefix(raw string) (URL, error) {
	u, err := parse(raw)
	if err == nil && u.Key != "" && !strings.HasSuffix(u.Key, "/") {
		u.Key += "/"
	}
	return u, err
}

func parse(raw string) (URL, error) {
	rest, ok := strings.CutPrefix(raw, "s3://")
	if !ok {
		return URL{}, fmt.Errorf("%q is not an s3:// URL", clip(raw))
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != nil {
		return URL{}, err
	}
	if err := checkKey(key); err != nil {
		return URL{}, err
	}
	return URL{Bucket: bucket, Key: key}, nil
}

// checkBucket applies S3's bucket naming rules (3 to 63 lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or
// digit), so a name never needs escaping in a path-style URL.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", clip(b))
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '.' && c != '-' || i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket name %q may hold only lower-case letters, digits, dots and hyphens", clip(b))
		}
	}
	return nil
}

// checkKey refuses keys S3 would refuse and keys whose "." or ".."
// segments some S3-compatible stores resolve as paths, which would take a
// key outside the prefix it was allowed by.
func checkKey(k string) error {
	switch {
	case len(k) > MaxKeyBytes:
		return fmt.Errorf("the key is over S3's %d-byte limit", MaxKeyBytes)
	case !utf8.ValidString(k):
		return errors.New("the key is not valid UTF-8")
	case strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("the key holds control characters")
	}
	for seg := range strings.SplitSeq(k, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("the key %q holds a %q segment", clip(k), seg)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// AllowList is a set of locations: whole buckets, or key prefixes in them.
type AllowList []URL

// ParseAllow reads a comma-separated list of s3://bucket or
// s3://bucket/prefix entries; a prefix covers the keys under it as a
// folder ("s3://b/leads" covers leads/x.csv, not leads-old/x.csv).
func ParseAllow(list string) (AllowList, error) {
	var out AllowList
	for e := range strings.SplitSeq(list, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		u, err := ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("S3 allow-list entry: %w", err)
		}
		out = append(out, u)
	}
	return out, nil
}

// Allows reports whether an entry of l covers u.
func (l AllowList) Allows(u URL) bool {
	for _, e := range l {
		if e.Bucket == u.Bucket && strings.HasPrefix(u.Key, e.Key) {
			return true
		}
	}
	return false
}

// Check reports whether tenant may use u: l allows it, or one of the
// tenant's own entries (jobs.S3AllowKey) does.
func (l AllowList) Check(ctx context.Context, rdb redis.Cmdable, tenant string, u URL) (bool, error) {
	if l.Allows(u) {
		return true, nil
	}
	own, err := rdb.SMembers(ctx, jobs.S3AllowKey(tenant)).Result()
	if err != nil {
		return false, fmt.Errorf("read the tenant's S3 allow-list: %w", err)
	}
	mine, _ := ParseAllow(strings.Join(own, ",")) // the CLI checked each entry
	return mine.Allows(u), nil
}
