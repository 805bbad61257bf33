#!/bin/sh
# 256 slow connections (headers or body a byte a second) beside sync predicts.
set -eu
exec "$(dirname "$0")/probe.sh" slowloris
