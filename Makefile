# The two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's date, not the build's: two builds of one commit are the same
# bytes (binaries and packages; nfpm reads SOURCE_DATE_EPOCH too).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
DATE ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
# commit and date go to the cli package, which prints them; main keeps only
# version (see cmd/agent/cli/buildinfo.go).
CLIPKG := github.com/edgeagent/agent/cmd/agent/cli
LDFLAGS := -s -w -buildid= -X main.version=$(VERSION) -X $(CLIPKG).commit=$(COMMIT) -X $(CLIPKG).date=$(DATE)
# Static, no cgo: the same binary runs on any board's libc.
BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
# Debian versions start with a digit and keep '-' for the revision:
# v1.2.0-3-gabc1234-dirty -> 1.2.0+3+gabc1234+dirty; no tag yet -> 0.0.0+gabc1234.
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v//; s/^([^0-9])/0.0.0+g\1/; s/-/+/g')
# nfpm v2.45.2, pinned in its own module (scripts/nfpm/go.mod) so that its
# dependencies never raise the agent's own (golang.org/x/... in go.mod).
NFPM := bin/nfpm
DEMO_SECONDS ?= 0
FUZZTIME ?= 30s

.PHONY: all deps build cross deb deb-package demo test test-arm vet bench fuzz clean

all: build

deps:
	@scripts/deps.sh

build:
	$(BUILD) -o bin/agent ./cmd/agent
	$(BUILD) -o bin/agent-demo ./cmd/agent-demo

# Cross-compiled for the boards: 64-bit (ROCK, Pi 3/4/5), ARMv7 (ARTIK,
# Pi 2/3), ARMv6 (Pi Zero/1), and amd64 for a PC or a VM master.
cross:
	@mkdir -p dist
	GOOS=linux GOARCH=arm64 $(BUILD) -o dist/agent-linux-arm64 ./cmd/agent
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o dist/agent-linux-armv7 ./cmd/agent
	GOOS=linux GOARCH=arm GOARM=6 $(BUILD) -o dist/agent-linux-armv6 ./cmd/agent
	GOOS=linux GOARCH=amd64 GOAMD64=v1 $(BUILD) -o dist/agent-linux-amd64 ./cmd/agent

$(NFPM): scripts/nfpm/go.mod scripts/nfpm/go.sum
	$(GO) -C scripts/nfpm build -trimpath -o $(abspath $(NFPM)) github.com/goreleaser/nfpm/v2/cmd/nfpm

# Debian packages (docs/packaging.md). armhf carries the ARMv6 binary: it runs
# on ARMv7 too, and Raspberry Pi OS's armhf is ARMv6 (Pi Zero/1).
deb: cross $(NFPM)
	$(MAKE) --no-print-directory deb-package DEB_ARCH=arm64 AGENT_BIN=dist/agent-linux-arm64
	$(MAKE) --no-print-directory deb-package DEB_ARCH=armhf AGENT_BIN=dist/agent-linux-armv6
	$(MAKE) --no-print-directory deb-package DEB_ARCH=amd64 AGENT_BIN=dist/agent-linux-amd64

# One package from one built binary (internal/packaging's test calls it too):
# make deb-package DEB_ARCH=amd64 AGENT_BIN=dist/agent-linux-amd64 [DEB_OUT=dir]
DEB_OUT ?= dist
deb-package: $(NFPM)
	@test -n "$(DEB_ARCH)" -a -f "$(AGENT_BIN)" || { echo "deb-package: set DEB_ARCH and AGENT_BIN (a built binary)" >&2; exit 2; }
	@mkdir -p $(DEB_OUT)
	DEB_ARCH=$(DEB_ARCH) AGENT_BIN=$(abspath $(AGENT_BIN)) DEB_VERSION=$(DEB_VERSION) \
		$(NFPM) package --config scripts/nfpm.yaml --packager deb \
		--target $(DEB_OUT)/agent_$(DEB_VERSION)_$(DEB_ARCH).deb

# A Makefile variable, for tests that build with the same flags: make -s print-LDFLAGS
print-%:
	@echo '$($*)'

# A throwaway PKI, Mosquitto with mutual TLS, an agent with simulated
# sensors: telemetry and command round trips on screen. Ctrl-C stops it;
# DEMO_SECONDS=N stops it by itself.
demo: deps build
	bin/agent-demo -agent bin/agent -seconds $(DEMO_SECONDS)

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

test: deps vet
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) test-arm

# The unit tests that need neither Mosquitto nor namespaces of their own,
# built for arm64 and armv7 and run under qemu-user (the boards' CPUs).
# AGENT_TEST_EMULATOR lets tests that re-run their own binary put qemu in
# front of it (no binfmt_misc here).
ARM_TEST_PKGS = $(shell $(GO) list ./... | grep -v -E '/cmd/agent$$|/agent$$|/agent/(doctor|brokerconf)$$|/internal/(brokertest|netlab|demo|packaging|benchsuite|requester)$$')
test-arm: deps
	AGENT_TEST_EMULATOR=qemu-aarch64-static GOARCH=arm64 $(GO) test -short -count=1 -timeout 10m -exec qemu-aarch64-static $(ARM_TEST_PKGS)
	AGENT_TEST_EMULATOR=qemu-arm-static GOARCH=arm GOARM=7 $(GO) test -short -count=1 -timeout 10m -exec qemu-arm-static $(ARM_TEST_PKGS)

# Figures beside their references (mosquitto_pub, mosquitto_sub, the broker alone).
# agent-bench prints the suite's table and writes it to docs/bench.md (the README links it).
bench: deps
	$(GO) run ./cmd/agent-bench -out docs/bench.md -readme README.md
	$(GO) test -run '^$$' -bench 'StartToFirstTelemetry' -benchtime 20x ./cmd/agent
	$(GO) test -run '^$$' -bench 'CommandRoundTrip' -benchtime 1000x ./cmd/agent
	$(GO) test -run '^$$' -bench 'SteadyRSS' -benchtime 1x ./cmd/agent
	$(GO) test -run '^$$' -bench 'Discovery' -benchtime 5x ./cmd/agent
	$(GO) test -run '^$$' -bench 'Fleet1000' -benchtime 1x ./cmd/agent
	$(GO) test -run '^$$' -bench 'SchedulerJitter' -benchtime 100x ./sensors
	$(GO) test -run '^$$' -bench 'Decode' -benchtime 1s ./sensors/i2cdev
	$(GO) test -run '^$$' -bench 'Append|Read' -benchtime 1s ./agent/buffer
	$(GO) test -run '^$$' -bench 'Drain' -benchtime 3x ./agent
	$(GO) test -run '^$$' -bench 'EncodeReading' -benchtime 1s ./agent
	$(GO) test -run '^$$' -bench 'Decode' -benchtime 1s ./agent/command
	$(GO) test -run '^$$' -bench 'Issue' -benchtime 20x ./pki
	$(GO) test -run '^$$' -bench 'EnrollRoundTrip' -benchtime 20x ./agent/enroll
	$(GO) test -run '^$$' -bench 'Handshake|ClientCrypto' -benchtime 200x ./tlsclient

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./agent/config
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./agent/command
	$(GO) test -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME) ./hostsfile
	$(GO) test -run '^$$' -fuzz FuzzCandidates -fuzztime $(FUZZTIME) ./discovery
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./agent/buffer
	$(GO) test -run '^$$' -fuzz FuzzScanSegment -fuzztime $(FUZZTIME) ./agent/buffer
	$(GO) test -run '^$$' -fuzz FuzzHostsAddrs -fuzztime $(FUZZTIME) ./agent/doctor
	$(GO) test -run '^$$' -fuzz FuzzObserve -fuzztime $(FUZZTIME) ./agent/fleet
	$(GO) test -run '^$$' -fuzz FuzzRender -fuzztime $(FUZZTIME) ./agent/brokerconf
	$(GO) test -run '^$$' -fuzz FuzzLoadIndex -fuzztime $(FUZZTIME) ./pki
	$(GO) test -run '^$$' -fuzz FuzzDecodeCSR -fuzztime $(FUZZTIME) ./pki/est
	$(GO) test -run '^$$' -fuzz FuzzDecodeCerts -fuzztime $(FUZZTIME) ./pki/est

clean:
	rm -rf bin dist
