# Baton's build. `make test` is what CI runs (.ci/run).
GO ?= go
PKGS := ./...

.PHONY: all build test deps tidy vet unit demo bench fuzz generate fmt clean

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

test: deps tidy vet unit

demo:
	$(GO) run ./cmd/baton demo

# Benchmarks behind docs/benchmarks.md.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./codecs ./p2p/media ./p2p/access

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
