GO ?= go
BIN := bin/sealflow
PKGS := ./... ./testdata/kubelet/...

.PHONY: all build deps test fmt-check vet unit demo demo-plan bench test-ipvs clean

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/sealflow

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 45m $(PKGS)

# Debian packages the tests use (installed when missing; needs root).
deps:
	bash testdata/ci/deps.sh

# The README's test command.
test: deps fmt-check vet unit

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
