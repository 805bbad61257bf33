#!/bin/sh
# kill -9 Redis with AOF under async load and restart it from its files,
# with appendfsync everysec (the compose default) and always.
set -eu
dir=$(dirname "$0")
"$dir/probe.sh" aof everysec
"$dir/probe.sh" aof always
