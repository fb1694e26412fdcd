# Ferry's build. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
GO ?= go
BIN := bin
# Debian packages the build and the tests need: the eBPF toolchain, the
# rdma-core headers for cgo, and the soft-RoCE + NVMe test bed (qemu, a
# Debian kernel with rdma_rxe, rdma-core tools, perftest, nvme-cli).
APT_PACKAGES := clang llvm libbpf-dev linux-libc-dev libibverbs-dev librdmacm-dev \
	qemu-system-x86 linux-image-amd64 rdma-core ibverbs-providers ibverbs-utils perftest \
	nvme-cli busybox-static cpio iproute2 kmod xz-utils zstd
# A count, not a duration: Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" failure when a -fuzztime duration expires
# with a worker mid-input (go.dev/issue/75804, fixed in Go 1.27); a count
# has no deadline to race. 50000 inputs take 2-15 s per target here.
FUZZTIME ?= 50000x

.PHONY: all deps generate check-generate build test unit fuzz lint test-rxe demo demo-tcp bench clean

all: build

# deps installs only what is missing, so it is cheap to run every time.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: all Debian packages present"; fi
	@$(GO) mod download

generate:
	$(GO) generate ./bpf/... ./internal/hostile/

# The committed bpf2go output must be what the sources generate.
check-generate: generate
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
		git diff --exit-code --stat -- bpf internal/hostile || { echo "generated files differ from the committed ones; run make generate and commit"; exit 1; }; \
		test -z "$$(git status --porcelain -- bpf internal/hostile)" || { git status --porcelain -- bpf internal/hostile; echo "untracked generated files"; exit 1; }; \
	fi

build:
	$(GO) build -o $(BIN)/ ./tools/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./fabric/... ./initiator/... ./target/... ./test/e2e/...

# Each fuzz target runs briefly on top of its committed seed corpus.
fuzz:
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		pkg=./$$(dirname $${spec#./}); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$spec | cut -d' ' -f2); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			log=$$(mktemp); \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1 || { \
				cat $$log; rm -f $$log; exit 1; }; \
			rm -f $$log; \
		done; \
	done

# The RDMA suites need an RDMA device and an NVMe drive: they run inside
# the qemu test bed (soft-RoCE rxe0, an emulated 8 MiB NVMe drive, the
# Debian kernel), from test binaries built here.
VMBIN := $(CURDIR)/$(BIN)/vm
VMTIMEOUT ?= 20m
test-rxe: deps
	@mkdir -p $(VMBIN)
	@for p in cgo rdma bpf target test/e2e; do \
		echo "build $$p test binary"; \
		$(GO) test -c -o $(VMBIN)/$$(basename $$p).test ./$$p || exit 1; \
	done
	$(GO) run ./tools/ferry-vm -timeout $(VMTIMEOUT) -nvme-size 8M -- sh test/vm/rxe-suite.sh $(VMBIN)

test: deps
	$(MAKE) lint
	$(MAKE) check-generate
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) test-rxe

# Benchmarks: the extensions' scan rates, the TCP provider, and pushdown
# against read-everything through a real target, side by side in one run.
BENCHTIME ?= 2s
bench: deps
	@mkdir -p out
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./bpf/ ./fabric/tcp/ ./test/e2e/ | tee out/bench.txt

# The demo runs over RDMA: on this host's RDMA device if it has one, else
# in the soft-RoCE VM against its emulated NVMe drive. demo-tcp is the
# quick path over TCP on 127.0.0.1 with a file.
demo: deps build
	@if [ -n "$$(ls /sys/class/infiniband 2>/dev/null)" ]; then \
		echo "demo: local RDMA device found"; \
		$(BIN)/ferry-demo -listen rdma://auto:7420; \
	else \
		echo "demo: no local RDMA device; booting the soft-RoCE + NVMe test bed (about 20 s)"; \
		$(GO) run ./tools/ferry-vm -timeout 15m -nvme-size 64M -- \
			$(BIN)/ferry-demo -listen rdma://auto:7420 -dataset /dev/nvme0n1; \
	fi

demo-tcp: deps build
	$(BIN)/ferry-demo

clean:
	rm -rf $(BIN)
