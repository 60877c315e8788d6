# Baton's build. `make test` is what CI runs (.ci/run).
GO ?= go
PKGS := ./...

.PHONY: allocs bench-register bench-bridge-pull bench-concurrent-pulls all build test deps tidy vet unit demo bench bench-gateway bench-relay fuzz generate fmt clean tools generate-proto check-proto

all: build

build:
	$(GO) build -o bin/baton ./cmd/baton

# deps installs (with apt-get, as root) the system packages the tests need,
# and fails with a clear message when it cannot.
deps:
	bash .ci/deps.sh

vet:
	$(GO) vet $(PKGS)

# tidy fails when go.mod or go.sum drift from what the code imports.
tidy:
	@$(GO) mod tidy -diff || { echo "tidy: go.mod/go.sum are not tidy; run 'go mod tidy' and commit" >&2; exit 1; }

unit:
	$(GO) test -race -shuffle=on -count=1 $(PKGS)

# allocs runs the allocation tests once more without the race detector,
# under which sync.Pool drops items at random and counts mean nothing.
allocs:
	$(GO) test -count=1 -run 'Allocs' $(PKGS)

test: deps tidy check-proto vet unit allocs

demo:
	$(GO) run ./cmd/baton demo

# Benchmarks behind docs/benchmarks.md.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./codecs ./p2p/media ./p2p/access

# Calls per second through `baton gateway` next to Kamailio (issue 8 §7);
# needs sipp and kamailio; see docs/benchmarks.md for the knobs.
bench-gateway:
	BATON_BENCH_GATEWAY=1 $(GO) test -run='^TestBenchGatewayCPS$$' -count=1 -v -timeout 30m ./cmd/baton

# 10,000 phones register with digest through `baton gateway` (sipp), logged
# in to `baton access` over the gateway's one session (issue 8 §7); needs
# sipp; see docs/benchmarks.md §24 for the knobs.
bench-register:
	BATON_BENCH_REGISTER=1 $(GO) test -run='^TestBenchRegisterStorm$$' -count=1 -v -timeout 30m ./cmd/baton

# Relayed G.711 calls through the gateway's relay next to rtpengine-daemon
# (userspace); needs rtpengine; see docs/benchmarks.md for the knobs.
bench-bridge-pull:
	BATON_BENCH_BRIDGE_PULL=1 $(GO) test -count=1 -timeout 60m -run '^TestBench(Bridge|Trunk)Pull$$' -v ./gateway

bench-concurrent-pulls:
	BATON_BENCH_CONCURRENT_PULLS=200 $(GO) test -count=1 -timeout 30m -run '^TestBenchConcurrentPulls$$' -v ./gateway

bench-relay:
	BATON_BENCH_RELAY=1 $(GO) test -p 1 -run='^TestBenchRelay(Gateway)?$$' -count=1 -v -timeout 60m ./gateway ./cmd/baton

# A short run of every fuzz target (each FUZZTIME).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list='^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

generate:
	$(GO) generate ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin

# Generated gRPC code for the plugin protocols (plugins/proto -> plugins/internal/pb).
# Needs protoc (make deps) and the two Go generators at pinned versions
# (make tools).
PROTOC ?= protoc
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.3.0
PROTO_FILES := $(shell find plugins/proto -name '*.proto' | sort)
# The generators are installed into bin/tools at the pinned versions (from
# the Go module proxy), so every machine generates the same code.
GOBIN_DIR := $(CURDIR)/bin/tools

tools:
	@GOBIN=$(GOBIN_DIR) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@GOBIN=$(GOBIN_DIR) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

generate-proto: tools
	@$(MAKE) --no-print-directory _protoc PROTO_OUT=.

# check-proto regenerates into a temporary directory and fails if the
# checked-in code differs from what the .proto sources give (make test runs
# it; protoc comes from .ci/deps.sh).
check-proto: tools
	@command -v $(PROTOC) >/dev/null || { echo "check-proto: protoc not installed (make deps installs it)" >&2; exit 1; }
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(MAKE) --no-print-directory _protoc PROTO_OUT=$$tmp && \
	diff -ru $$tmp/plugins/internal/pb plugins/internal/pb && echo "check-proto: generated code is up to date"

_protoc:
	@mkdir -p $(PROTO_OUT)
	PATH="$(GOBIN_DIR):$$PATH" $(PROTOC) -I plugins/proto \
	  --go_out=$(PROTO_OUT) --go_opt=module=github.com/baton-voice/baton \
	  --go-grpc_out=$(PROTO_OUT) --go-grpc_opt=module=github.com/baton-voice/baton \
	  $(PROTO_FILES)
