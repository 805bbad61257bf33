// Command hokusai is the operator's CLI and the one-process dev stack.
//
//	hokusai dev [--listen :8080]            API + worker (+ a private redis-server) with the demo model
//	hokusai keys create --tenant NAME [--limit N/h|unlimited]   print a new API key (only the key, on stdout)
//	hokusai keys revoke KEY|ID
//	hokusai keys list                       ids, tenants and rate limits (never keys)
//	hokusai keys limits KEY|ID|--tenant NAME --limit N/h|unlimited|default
//	hokusai keys audit [--tenant NAME] [--since DAY]   who created, revoked or re-limited which key id, when
//	hokusai usage [--tenant NAME] [--since DAY] [--until DAY] [--format table|csv]   usage per day, key id, model
//	hokusai models apply -f FILE            write registry entries from YAML
//	hokusai models list
//	hokusai workers                         list workers, pools, models and readiness
//	hokusai model predict|bench MODEL ...   run a model folder or file locally
//	hokusai keys secret --tenant NAME       print the tenant's webhook signing secret
//	hokusai batch submit|status|results|cancel|gen-leads ...   batch scoring over the API
//	hokusai schedules create|list|delete ...   recurring S3 batches over the API
//
// keys create, revoke and limits are audited under --actor NAME, else
// $HOKUSAI_ACTOR, else the OS user@hostname. All commands but `model` talk
// to REDIS_URL (default redis://127.0.0.1:6379/0).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hokusai:", err)
		os.Exit(1)
	}
}

const usage = `usage: hokusai COMMAND
  dev [--listen :8080]          run API + worker with the demo model
  keys create --tenant NAME [--limit N/h]   issue an API key, with its own rate limit
  keys revoke KEY|ID            revoke a key
  keys list                     list keys (ids, tenants, limits; never keys)
  keys limits KEY|ID|--tenant NAME --limit N/h|unlimited|default   set a key's or a tenant's rate limit
  keys audit [--tenant NAME] [--since YYYY-MM-DD]   key and limit changes, with time and actor
                                (keys create|revoke|limits take --actor NAME; default $HOKUSAI_ACTOR or user@host)
  usage [--tenant NAME] [--since D] [--until D] [--format table|csv]   requests, rows, errors, compute per day, key id, model
  models apply -f FILE          apply registry YAML
  models list                   list registry entries
  workers                       list workers and their readiness
  s3 allow|revoke --tenant NAME s3://BUCKET[/PREFIX]   a tenant's own S3 batch locations, on top of HOKUSAI_S3_ALLOW
  s3 list --tenant NAME         a tenant's own S3 batch locations
  model predict MODEL [--input FILE] [--explain]
  model bench MODEL [--rows N]
  keys secret --tenant NAME     show the tenant's webhook signing secret
  batch submit FILE --model ID [--wait] [-o OUT]   score a CSV/JSONL/JSON file (HOKUSAI_API_URL, HOKUSAI_API_KEY)
  batch status|cancel ID        a batch's progress, or cancel it
  batch results ID -o OUT       download a finished batch's results
  batch gen-leads N [-o OUT]    write N synthetic leads for model 21
  schedules create --model ID --cron SPEC [--tz ZONE] --input s3://... --output s3://...   a recurring S3 batch ({{date}} in the URLs)
  schedules list|delete ID      the tenant's schedules and their latest runs, or delete one`

var errUsage = errors.New(usage)

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errUsage
	}
	rest := args[2:]
	switch args[1] {
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "keys", "models", "workers", "usage", "s3":
		return runAdmin(ctx, args[1], rest, getenv, stdout)
	case "model":
		return runModel(ctx, rest, stdin, stdout, stderr)
	case "batch":
		return runBatch(ctx, rest, getenv, stdout, stderr)
	case "schedules":
		return runSchedules(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[1], usage)
}
