package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

const usage = "usage: probe sentinel none|replicas:N | aof everysec|always | maxmemory | slowloris"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("%s", usage)
	}
	arg := ""
	if len(args) > 2 {
		arg = args[2]
	}
	dir, err := os.MkdirTemp("", "hokusai-faults-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var row *result
	switch args[1] {
	case "sentinel":
		row, err = sentinelKill(ctx, dir, arg)
	case "aof":
		row, err = aofKill(ctx, dir, arg)
	case "maxmemory":
		row, err = memoryFlood(ctx, dir)
	case "slowloris":
		row, err = slowClients(ctx, dir)
	default:
		return fmt.Errorf("unknown probe %q\n%s", args[1], usage)
	}
	if err != nil {
		return err
	}
	row.print(stdout)
	return nil
}
