GO ?= go
BIN := bin/sealflow
PKGS := ./...

.PHONY: all agents build deps test tidy-check fmt-check vet unit demo demo-plan bench test-ipvs clean

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# The relay agents distribute starts on hosts (internal/relaybin embeds them):
# small, static, one per host architecture.
agents:
	@for a in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags "-s -w" -o internal/relaybin/agents/sealflow-relay-linux-$$a ./cmd/sealflow-relay && \
		gzip -9 -n -f internal/relaybin/agents/sealflow-relay-linux-$$a || exit 1; \
	done

build: agents
	$(GO) build -ldflags "-X github.com/sealflow/sealflow/internal/version.Version=$(VERSION)" -o $(BIN) ./cmd/sealflow

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# go.mod and go.sum say exactly what the code imports: `go mod tidy -diff` prints what tidy
# would change and fails when it would change anything.
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

vet: agents
	$(GO) vet $(PKGS)

unit: agents
	$(GO) test -race -count=1 -timeout 45m $(PKGS)

# Debian packages the tests use (installed when missing; needs root).
deps:
	bash testdata/ci/deps.sh

# The README's test command.
test: deps tidy-check fmt-check vet unit

# IPVS backend of lvscare on a real kernel (Debian's) under qemu.
test-ipvs:
	bash lvscare/ipvstest/run.sh

# The HA Kubernetes demo on a lab (the README's main command).
demo: build
	bash testdata/demo/demo.sh

# A short demo of plans alone: a 5-host lab, a plan over SSH, status.
demo-plan: build
	bash testdata/demo/plan-demo.sh

bench: build
	bash testdata/bench/bench.sh

clean:
	rm -rf bin .sealflow
