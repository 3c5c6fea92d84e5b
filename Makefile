# sailmaker's Makefile. Two commands matter on a fresh machine (as root):
#   make demo   install what is missing, build, start buildkitd and the registry,
#               build the base images and the sample recipe
#   make test   all tests, unit and integration (real buildkitd and registry)

# The one place BuildKit is pinned: the daemon and CLI built into bin/ and the
# client library in go.mod must both be this version (checked by check-pins).
BUILDKIT_VERSION := v0.33.1
# cosign, the independent client the tests verify signatures and
# attestations with (installed into bin/, like buildkitd).
COSIGN_VERSION := v2.6.5

BIN       := $(CURDIR)/bin
STATE_DIR ?= /var/lib/sailmaker
GO        ?= go
SAILMAKER := $(BIN)/sailmaker
export SAILMAKER_BIN_DIR := $(BIN)

GO_SOURCES := $(shell find . -name '*.go' -not -path './testdata/*' -not -path './tools/*' -not -path './bench/out/*') \
              $(shell find recipes -name '*.yaml' -o -name '*.patch') go.mod go.sum

.PHONY: FORCE all build tools deps check-pins demo down status test test-space test-unit bench fuzz lint clean images

all: build tools

build: $(SAILMAKER)

# `sailmaker version` reports the tree's git describe and commit and the
# BuildKit pin, stamped here (a binary built otherwise falls back to Go's
# build info). bin/.version changes only when they do, so a new commit
# rebuilds the binary even when no Go file changed.
SAILMAKER_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
SAILMAKER_COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION_PKG       := github.com/sailmaker/sailmaker/internal/version
LDFLAGS           := -X $(VERSION_PKG).version=$(SAILMAKER_VERSION) -X $(VERSION_PKG).commit=$(SAILMAKER_COMMIT) -X $(VERSION_PKG).buildkit=$(BUILDKIT_VERSION)

$(BIN)/.version: FORCE
	@mkdir -p $(BIN); echo '$(LDFLAGS)' | cmp -s - $@ || echo '$(LDFLAGS)' > $@

$(SAILMAKER): $(GO_SOURCES) $(BIN)/.version
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/sailmaker

FORCE:

tools: $(BIN)/buildkitd $(BIN)/buildctl $(BIN)/cosign $(BIN)/oci-conformance.test

$(BIN)/cosign:
	GOBIN=$(BIN) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

# buildkitd and buildctl from the pinned module (go install pkg@version refuses
# BuildKit's exclude directives, so they are built inside a small tools module).
$(BIN)/buildkitd $(BIN)/buildctl &: tools/buildkit/go.mod tools/buildkit/go.sum | check-pins
	cd tools/buildkit && $(GO) build -trimpath -ldflags "-X github.com/moby/buildkit/version.Version=$(BUILDKIT_VERSION)" -o $(BIN)/ github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl

# The OCI distribution-spec conformance suite, pinned in tools/conformance;
# registry's TestConformance runs it against the embedded registry.
$(BIN)/oci-conformance.test: tools/conformance/go.mod tools/conformance/go.sum
	cd tools/conformance && $(GO) test -c -o $@ github.com/opencontainers/distribution-spec/conformance

check-pins:
	@tools_v=$$(awk '$$1=="require" && $$2=="github.com/moby/buildkit" {print $$3}' tools/buildkit/go.mod); \
	 main_v=$$($(GO) list -m -f '{{.Version}}' github.com/moby/buildkit); \
	 if [ "$$tools_v" != "$(BUILDKIT_VERSION)" ] || [ "$$main_v" != "$(BUILDKIT_VERSION)" ]; then \
	   echo "BuildKit pins disagree: Makefile $(BUILDKIT_VERSION), tools/buildkit/go.mod $$tools_v, go.mod $$main_v."; \
	   echo "Run: (cd tools/buildkit && go get github.com/moby/buildkit@$(BUILDKIT_VERSION) && go mod tidy) && go get github.com/moby/buildkit@$(BUILDKIT_VERSION) && go mod tidy"; \
	   exit 1; fi

# Debian packages sailmaker needs on the host: runc for buildkitd's OCI worker,
# mmdebstrap for base images, git and make for sources, docker-registry (the
# distribution registry) and skopeo for tests with independent servers and clients,
# chromium for the web pages' browser test (driven from Go by chromedp, no driver),
# qemu-user-static, binfmt-support and arch-test for linux/arm64 base images
# (their maintainer scripts run under qemu through binfmt_misc), rootlesskit and
# uidmap (newuidmap/newgidmap) for rootless buildkitd workers.
DEB_PACKAGES := runc mmdebstrap git make docker-registry skopeo ca-certificates chromium \
                qemu-user-static binfmt-support arch-test rootlesskit uidmap
# Debian packages and the apt repository: dpkg-deb (dpkg), lintian, apt-get
# (apt) and gpgv/gpg check what packaging/ and aptrepo/ make.
DEB_PACKAGES += dpkg apt lintian gpg gpgv
# isal's igzip: buildkitd (containerd's decompression) uses it when it is on
# its PATH, about four times faster than Go's gzip for the layers it unpacks
# (validation loads each built image's new layer).
DEB_PACKAGES += isal
BINFMT := /proc/sys/fs/binfmt_misc
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "Missing Debian packages:$$missing. Run as root (sudo make ...) or install them with apt-get."; exit 1; fi; \
	  echo "Installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing; \
	fi
	@if [ ! -e $(BINFMT)/status ] || [ "$$(cat $(BINFMT)/qemu-aarch64 2>/dev/null | head -1)" != enabled ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "binfmt_misc is not set up for arm64 (qemu-aarch64). Run as root (sudo make ...)."; exit 1; fi; \
	  if [ ! -e $(BINFMT)/status ]; then echo "Mounting binfmt_misc on $(BINFMT)"; mount -t binfmt_misc binfmt_misc $(BINFMT); fi; \
	  echo "Enabling qemu-aarch64 in binfmt_misc"; update-binfmts --enable qemu-aarch64; \
	fi

# The main job on the embedded defaults. What it starts stays up; `make down`
# stops it; running it again reuses what is there.
demo: deps build tools
	$(SAILMAKER) --state-dir $(STATE_DIR) dev up
	$(SAILMAKER) --state-dir $(STATE_DIR) base build
	$(SAILMAKER) --state-dir $(STATE_DIR) demo

down:
	@if [ -x $(SAILMAKER) ]; then $(SAILMAKER) --state-dir $(STATE_DIR) dev down; else echo "nothing to stop: $(SAILMAKER) is not built"; fi

status: build
	$(SAILMAKER) --state-dir $(STATE_DIR) dev status

# All tests: unit and integration. Integration tests start their own buildkitd
# (from bin/) and registries; they fail, not skip, when those cannot start.
TEST_FLAGS ?=
test: test-space deps build tools
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 50m $(TEST_FLAGS) ./...

# Room on disk for the tests, checked before anything is installed or
# started: at their peak the integration tests hold about 10 GiB in /tmp
# (each test's buildkitd state, registries, images), beside the Go caches,
# the Debian packages `make deps` installs and the test cache in /var/tmp.
# A disk that fills midway fails tests with "no space left on device" far
# from the cause; this says it first.
TEST_MIN_FREE_GIB ?= 20
test-space:
	@for d in /tmp /var/tmp; do \
	  free=$$(df -Pk $$d | awk 'NR==2 {print int($$4/1048576)}'); \
	  if [ "$$free" -lt $(TEST_MIN_FREE_GIB) ]; then \
	    echo "make test: $$d has $$free GiB free, and the tests need about $(TEST_MIN_FREE_GIB) GiB (buildkitd state, registries, Go caches): free some (old state directories, 'go clean -cache', bench/out) or set TEST_MIN_FREE_GIB=N to try with less" >&2; exit 1; \
	  fi; \
	done

# Unit tests only (no buildkitd, no mmdebstrap).
test-unit:
	$(GO) test -short -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./recipes/

# The benchmark (not part of `make test`): sailmaker, a plain Dockerfile build
# and the host's own make side by side on the fixture, in the environment
# `make demo` sets up (its registry and ledger are left as they were: the
# benchmark runs its own registry); the table goes to the terminal and, with
# results.json, to bench/out/<time>/ (see bench/README.md). Flags through
# BENCH_FLAGS, e.g.
#   make bench BENCH_FLAGS='--runs 5 --scenarios incremental,no-op'
# With a git mirror of istio/istio (holding tag 1.24.2) and an Envoy tarball
# (envoy-alpha-<PROXY_REPO_SHA>.tar.gz), it then measures real Istio 1.24.2:
#   make bench ISTIO_SOURCE=/srv/git/istio.git ENVOY_FILE=/srv/envoy-alpha-1ed7d440....tar.gz
# (the tarball's sha256 is taken as given; flags through ISTIO_BENCH_FLAGS).
BENCH_FLAGS ?=
ISTIO_SOURCE ?=
ENVOY_FILE ?=
ISTIO_BENCH_FLAGS ?= --scenarios first-time,cold,no-op,incremental,base-bump --runs 3 --cold-runs 1
bench: deps build tools
	@if [ -n "$(ISTIO_SOURCE)$(ENVOY_FILE)" ] && { [ -z "$(ISTIO_SOURCE)" ] || [ -z "$(ENVOY_FILE)" ]; }; then \
		echo "make bench: the real-Istio benchmark needs both ISTIO_SOURCE (a git mirror of istio/istio) and ENVOY_FILE (envoy-alpha-<PROXY_REPO_SHA>.tar.gz)" >&2; exit 2; fi
	@if [ -n "$(ENVOY_FILE)" ] && [ ! -f "$(ENVOY_FILE)" ]; then echo "make bench: ENVOY_FILE=$(ENVOY_FILE): no such file" >&2; exit 2; fi
	$(SAILMAKER) --state-dir $(STATE_DIR) dev up
	$(SAILMAKER) --state-dir $(STATE_DIR) base build
	$(SAILMAKER) --state-dir $(STATE_DIR) bench $(BENCH_FLAGS)
	@if [ -n "$(ISTIO_SOURCE)" ]; then \
		sum=$$(sha256sum "$(ENVOY_FILE)" | cut -d' ' -f1) && \
		echo "bench: real Istio 1.24.2 from $(ISTIO_SOURCE), Envoy $(ENVOY_FILE) (sha256 $$sum)" && \
		$(SAILMAKER) --state-dir $(STATE_DIR) bench --recipe istio@1.24.2 --source "$(ISTIO_SOURCE)" \
			--envoy-file "$(ENVOY_FILE)" --envoy-sha256 $$sum $(ISTIO_BENCH_FLAGS); \
	else \
		echo ""; \
		echo "################################################################################"; \
		echo "# SKIPPED: the benchmark on real Istio 1.24.2 (only the fixture was measured)."; \
		echo "# To run it, give a git mirror of istio/istio holding tag 1.24.2 and the Envoy"; \
		echo "# tarball envoy-alpha-1ed7d44031746a2ad74707202464b4bfdcb38e82.tar.gz:"; \
		echo "#   make bench ISTIO_SOURCE=/srv/git/istio.git ENVOY_FILE=/srv/envoy-alpha-....tar.gz"; \
		echo "# (about 30 minutes on 2 cores; see bench/README.md)."; \
		echo "################################################################################"; \
	fi

# The deployment's images (docs/deploy.md): the service and a pool worker, built
# by BuildKit's built-in Dockerfile frontend on the internal base images
# (base/buildkitd first: sailmaker base build -f docker/buildkitd/base.yaml) and
# pushed to REGISTRY, with the buildkitd `make demo` starts.
REGISTRY ?= 127.0.0.1:5000
BUILDKIT_ADDR ?= unix://$(STATE_DIR)/buildkitd/buildkitd.sock
IMAGE_TAG ?= dev
images: build tools
	mkdir -p $(BIN)/image
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/image/sailmaker ./cmd/sailmaker
	$(BIN)/buildctl --addr $(BUILDKIT_ADDR) build --frontend dockerfile.v0 --local context=. --local dockerfile=docker \
	  --opt build-arg:REGISTRY=$(REGISTRY) --output type=image,name=$(REGISTRY)/sailmaker/sailmaker:$(IMAGE_TAG),push=true,registry.insecure=true
	$(BIN)/buildctl --addr $(BUILDKIT_ADDR) build --frontend dockerfile.v0 --local context=. --local dockerfile=docker/buildkitd \
	  --opt build-arg:REGISTRY=$(REGISTRY) --output type=image,name=$(REGISTRY)/sailmaker/buildkitd:$(BUILDKIT_VERSION),push=true,registry.insecure=true

clean:
	rm -rf $(BIN)
