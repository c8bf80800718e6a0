# The two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Static, no cgo: the same binary runs on any board's libc.
BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
DEMO_SECONDS ?= 0
FUZZTIME ?= 30s

.PHONY: all deps build cross demo test vet bench fuzz clean

all: build

deps:
	@scripts/deps.sh

build:
	$(BUILD) -o bin/agent ./cmd/agent
	$(BUILD) -o bin/agent-demo ./cmd/agent-demo

# Cross-compiled for the boards: 64-bit (ROCK, Pi 4/5) and ARMv7 (ARTIK, Pi 2/3).
cross:
	GOOS=linux GOARCH=arm64 $(BUILD) -o bin/agent-linux-arm64 ./cmd/agent
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o bin/agent-linux-armv7 ./cmd/agent

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
