#!/bin/sh
# kill -9 the Sentinel master under async load, with durability none and
# replicas:1 (about 1 min each, more if jobs are stuck; bounded at 4 min).
set -eu
dir=$(dirname "$0")
"$dir/probe.sh" sentinel none
"$dir/probe.sh" sentinel replicas:1
