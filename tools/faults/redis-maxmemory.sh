#!/bin/sh
# An async flood into a 16 MB noeviction Redis with 1 min retention:
# refused with queue_full, nothing accepted lost, room back as results expire.
set -eu
exec "$(dirname "$0")/probe.sh" maxmemory
