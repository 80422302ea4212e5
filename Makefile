# Parley: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
PORT ?= 7700
LISTEN ?= :$(PORT)
NAME ?= $(shell whoami 2>/dev/null || echo me)
DATA ?= $(HOME)/.local/share/parley
BIN := bin
MODULE := github.com/parleychat/parley

# System packages (Debian/Ubuntu names). protocol and relay are pure Go;
# media needs libvpx, libopus, libspeexdsp and PortAudio (cgo), the Gio
# window (ui, cmd/parley) the X11, Wayland, EGL and Vulkan headers: make
# run installs those. The tests also play audio through a private
# PulseAudio daemon with null sinks (and speech from espeak-ng into them),
# check what was encoded with ffmpeg, and run the app under Xvfb, typing
# into it with xdotool and taking screenshots with ImageMagick: make test
# installs those too.
BUILD_PACKAGES := gcc pkg-config libvpx-dev libopus-dev libopusfile-dev libspeexdsp-dev portaudio19-dev libasound2-dev \
	libasound2-plugins libx11-dev libxext-dev libwayland-dev libx11-xcb-dev libxkbcommon-x11-dev \
	libgles2-mesa-dev libegl1-mesa-dev libffi-dev libxcursor-dev libxfixes-dev libvulkan-dev libgl1-mesa-dri
TEST_PACKAGES := pulseaudio pulseaudio-utils espeak-ng ffmpeg xvfb xdotool imagemagick

.PHONY: all build run run-terminal test soak deps deps-build install-packages vet fmt-check fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# deps installs the missing system packages that the build and the tests
# need, deps-build those the build needs, with apt-get as root or with
# sudo (asking for a password only in a terminal); otherwise they say
# which are missing.
deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BUILD_PACKAGES) $(TEST_PACKAGES)"
deps-build:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BUILD_PACKAGES)"
install-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing the system packages Parley needs:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing system packages:$$missing (install them with apt-get)"; exit 1; fi; \
	fi

# run opens the desktop app hosting the room "lobby" on port $(PORT), with
# the camera and microphone (the test pattern and a tone where there are
# none), and prints the invite link that others join with. Without a
# display it runs parleyd and joins its lobby with the terminal client.
run: deps-build build
	@if [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo "No display (DISPLAY and WAYLAND_DISPLAY are unset): running parleyd and the terminal client instead."; \
	  exec $(MAKE) --no-print-directory run-terminal; fi; \
	echo "Opening Parley, hosting the room lobby. Share the invite link printed below (the window has a Copy button)."; \
	exec $(BIN)/parley --host --name "$(NAME)" --listen "$(LISTEN)" --video camera,testpattern --audio mic,tone

# run-terminal starts a local parleyd (data in $(DATA), listening on
# $(LISTEN)) and joins its lobby with the terminal client. Leaving the
# client (/quit or Ctrl-D) stops the server.
run-terminal: deps-build build
	@mkdir -p "$(DATA)"; \
	if (exec 3<>/dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null; then \
	  echo "port $(PORT) is in use: stop what runs there or use make run PORT=7701"; exit 1; fi; \
	$(BIN)/parleyd --listen $(LISTEN) --data "$(DATA)" 2>"$(DATA)/parleyd.log" & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; \
	for i in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null && break; sleep 0.1; done; \
	echo "parleyd is running (log: $(DATA)/parleyd.log). Invite others with:"; \
	echo "  $$(cat "$(DATA)/invite.txt")"; \
	echo "Type a message and press Enter; /msg NAME TEXT for a private message; /quit to leave."; \
	$(BIN)/parley-cli join "$$(cat "$(DATA)/invite.txt")" --name "$(NAME)"

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/parleyd

# test installs what the tests need and runs the whole suite with -race,
# in three steps: the packages without timing-sensitive tests side by
# side, then the relay's (delays, rates and deadlines on loopback) and the
# end-to-end tests (many parleyd and client processes) each alone, so that
# neither measures the other's load on a two-core machine. The end-to-end
# tests keep their screenshots of the desktop app in test-artifacts/.
test: deps fmt-check vet
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -x -e '$(MODULE)/relay' -e '$(MODULE)/cmd/e2etest')
	$(GO) test -race -timeout 20m ./relay
	@mkdir -p test-artifacts
	$(GO) test -race -timeout 20m -artifacts -outputdir $(CURDIR)/test-artifacts ./cmd/e2etest

# soak runs the long reliability tests (docs/reliability.md): the soak of
# 200 members with churn through latency, jitter and slicing for SOAK
# (10m; make soak SOAK=1h for longer), the 60 s silent partition, the
# delivery property test with 500 cases, all under -race; then the
# reconnect stampede of 2,000 clients, without -race, which slows TLS
# handshakes 10 to 20 times (make test runs it with 200 under -race).
SOAK ?= 10m
soak: deps
	set -o pipefail; $(GO) test -race -tags soak -run 'Soak|TestDeliveryProperties' -timeout 2h -v ./relay/ -args -soak.duration=$(SOAK) -rapid.checks=500 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|_test.go:'
	set -o pipefail; $(GO) test -tags soak -run 'TestReconnectStampede' -timeout 30m -v ./cmd/e2etest/ -args -stampede.clients=2000 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|stampede_test.go:'

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

# bench runs the Go benchmarks (benchstat reads bench/go.txt) and every
# measurement of docs/performance.md, and writes that file and its plot
# (under 15 minutes here).
BENCH_COUNT ?= 5
BENCH_TIME ?= 500ms
bench: deps build
	@mkdir -p bench
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) ./protocol/... ./relay/... ./media/... | tee bench/go.txt
	$(GO) test ./media/vpx -run '^TestVP8VersusJPEG$$' -vpxjpeg -vpxjpeg-out $(CURDIR)/bench/vp8-vs-jpeg.md
	$(BIN)/parley-load bench --out docs/performance.md --plot docs/voice-under-video.png --include bench

clean:
	rm -rf $(BIN)
