#!/bin/sh
# Builds the fault probe once per `make faults` (bin/faults-probe) and runs
# it with the arguments given; the redis-*.sh and api-*.sh probes call it.
set -eu
cd "$(dirname "$0")/../.."
if [ ! -x bin/faults-probe ] || [ -n "$(find tools/faults/probe cmd api worker internal jobs -newer bin/faults-probe -name '*.go' | head -1)" ]; then
	go build -o bin/faults-probe ./tools/faults/probe
fi
exec bin/faults-probe "$@"
