# The two commands the README promises: `make run` and `make test`. Both
# install what they need on a fresh Debian machine (as root) and say so.
GO ?= go
BIN := bin
LISTEN ?= :8080

.PHONY: build run test check bench fuzz faults clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/hokusai-api ./cmd/hokusai-worker ./cmd/hokusai

# The whole stack in one process with the demo model (model 21).
run: build
	@tools/ensure-deps.sh run
	$(BIN)/hokusai dev --listen $(LISTEN)

# Formatting, module hygiene, vet, and golangci-lint (.golangci.yml: the
# standard linters plus depguard rules that encode the architecture), at
# the version pinned in tools/lint/go.mod, built once into the Go cache.
LINT := $(GO) tool -modfile=tools/lint/go.mod golangci-lint

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(LINT) run --allow-parallel-runners ./...

# Some tests need a build without -race: allocation counts, and the
# fairness test's 2,000,000-row batch (over ten minutes under the race
# detector). That pass runs only the packages that have such tests, so the
# others are compiled once; the -race pass skips them.
NORACE := Allocat|FairShare
test: check
	@tools/ensure-deps.sh test
	@tools/fuzz-short.sh
	$(GO) test -count=1 -run '$(NORACE)' $$(grep -rl --include='*_test.go' -E '^func Test[A-Za-z0-9_]*($(NORACE))' . | xargs -n1 dirname | sort -u)
	$(GO) test -race -count=1 -timeout 15m -skip '$(NORACE)' ./...

fuzz:
	FUZZTIME=2000000x tools/fuzz-short.sh

# The predict path beside the Python peers of ../shared/peers, bounded (the
# estimate is printed first); PEERS=0 ROUNDS=3 SECS=5: see tools/bench.sh.
bench: build
	@tools/ensure-deps.sh bench
	tools/bench.sh

# The fault suite (not part of test: about 10 minutes): every
# tools/faults/*.sh probe starts real redis-server, redis-sentinel, API and
# worker processes on loopback, injects one fault under a bounded load and
# prints a row (sent, accepted, lost, duplicated, errors, recovery).
faults: build
	@tools/ensure-deps.sh faults
	@for p in tools/faults/*.sh; do case $$p in */probe.sh) continue;; esac; echo "== $$p"; $$p || exit 1; done

clean:
	rm -rf $(BIN) .hokusai
