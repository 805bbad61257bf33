package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/hokusai-ai/inference-queue/internal/s3url"
	"github.com/hokusai-ai/inference-queue/jobs"
)

// runS3 edits a tenant's own S3 allow-list, on top of HOKUSAI_S3_ALLOW:
// s3 allow|revoke --tenant NAME s3://bucket[/prefix], s3 list --tenant NAME.
func runS3(ctx context.Context, rdb redis.UniversalClient, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	fs := flag.NewFlagSet("s3 "+args[0], flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant whose list to change")
	pos, err := parseMixed(fs, args[1:])
	if err != nil {
		return err
	}
	if *tenant == "" {
		return fmt.Errorf("s3 %s needs --tenant NAME", args[0])
	}
	key := jobs.S3AllowKey(*tenant)
	switch args[0] {
	case "allow", "revoke":
		if len(pos) != 1 {
			return fmt.Errorf("s3 %s needs one s3://bucket[/prefix]", args[0])
		}
		l, err := s3url.ParseAllow(pos[0])
		if err != nil || len(l) != 1 {
			return fmt.Errorf("s3 %s: %q is not one s3://bucket[/prefix]: %v", args[0], pos[0], err)
		}
		entry := "s3://" + l[0].Bucket + "/" + l[0].Key
		if args[0] == "allow" {
			err = rdb.SAdd(ctx, key, entry).Err()
		} else {
			err = rdb.SRem(ctx, key, entry).Err()
		}
		if err != nil {
			return fmt.Errorf("update the S3 allow-list of %s: %w", *tenant, err)
		}
		fmt.Fprintf(stdout, "%s: %s %s\n", *tenant, entry, map[string]string{"allow": "allowed", "revoke": "revoked"}[args[0]])
		return nil
	case "list":
		entries, err := rdb.SMembers(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("read the S3 allow-list of %s: %w", *tenant, err)
		}
		sort.Strings(entries)
		for _, e := range entries {
			fmt.Fprintln(stdout, e)
		}
		return nil
	}
	return errUsage
}
