# hlss: `make run [MEDIA=path]` serves a folder or file (or the demo); `make test` runs every check.
# Both install the Debian packages they need first (as root, or through sudo).

MEDIA ?=
LISTEN ?= 127.0.0.1:5000
ARGS ?=
FUZZ_SECONDS ?= 300

# Build and run: GStreamer 1.22 with the plugins hlss uses.
RUN_PACKAGES := pkg-config libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav
# Tests: real clients (GStreamer's HLS demuxer via gst-launch, ffmpeg/ffprobe), media generation, and
# Prometheus' own parser for /metrics.
TEST_PACKAGES := $(RUN_PACKAGES) gstreamer1.0-tools ffmpeg python3-prometheus-client
# Hardening tests: a syscall trace of a playback; util-linux (unshare, setpriv) is always installed.
TEST_PACKAGES += strace
# Browser and cache tests: Debian's Chromium (driven by playwright-core from npm, never a browser
# download) and nginx as a caching proxy in front of hlss.
TEST_PACKAGES += chromium nginx-light
# TLS tests: certificates made at test time (openssl), HTTP/2 and HTTP/1.1 asked for by name (curl).
TEST_PACKAGES += openssl curl
# systemd-analyze checks the shipped unit (tests/deploy.rs); nothing is started with it.
TEST_PACKAGES += systemd

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint unit deps test-deps build

define install_missing
	@missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "Installing missing packages:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first"; exit 1; }
endef

# build.rs fetches hls.js with npm (tests/browser.rs fetches playwright-core). Checked by command,
# not by package: a machine may have Node.js from elsewhere, whose package conflicts with Debian's npm.
define install_node
	@command -v npm >/dev/null || { \
		echo "Installing missing packages: nodejs npm"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends nodejs npm; \
	}
endef

deps:
	$(call install_missing,$(RUN_PACKAGES))
	$(install_node)

test-deps:
	$(call install_missing,$(TEST_PACKAGES))
	$(install_node)

build: deps
	cargo build --release --locked

run: build
	./target/release/hlss --listen $(LISTEN) $(ARGS) $(MEDIA)

lint: test-deps
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

test: lint
	cargo test --locked

# Fuzzing (cargo-fuzz, libFuzzer + AddressSanitizer, on the stable toolchain through RUSTC_BOOTSTRAP).
# `make fuzz` runs every target for FUZZ_SECONDS; `make fuzz-smoke` for 60 s each and skips (exit 0)
# when cargo-fuzz cannot be installed. Findings land in fuzz/artifacts/<target>/; copy them into
# tests/corpus/segmenter/ or tests/corpus/index/ (see their READMEs) so the replay tests keep them fixed.
FUZZ_TARGETS := raw structured index subtitles
# Seeds besides each target's own growing corpus: the committed streams suit the raw target.
FUZZ_SEEDS_raw := ../tests/corpus/segmenter
FUZZ_SEEDS_structured :=
FUZZ_SEEDS_index := ../tests/corpus/index
FUZZ_SEEDS_subtitles :=
# libFuzzer flags: a slow input (a loop without progress) counts as a finding. HLSS_NO_NPM: the
# targets need no embedded hls.js, so the fuzz build skips fetching it.
FUZZ_FLAGS := -timeout=10 -rss_limit_mb=2048

.PHONY: fuzz fuzz-smoke fuzz-run bench

fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	$(MAKE) fuzz-run

fuzz-smoke:
	@if command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked; then \
		$(MAKE) fuzz-run FUZZ_SECONDS=60; \
	else \
		echo "fuzz-smoke: SKIPPED: cargo-fuzz could not be installed (the corpus replay in make test still ran)"; \
	fi

fuzz-run:
	cd fuzz && $(foreach t,$(FUZZ_TARGETS),\
		mkdir -p corpus/$(t) && echo "fuzz: $(t) for $(FUZZ_SECONDS) s" && \
		RUSTC_BOOTSTRAP=1 HLSS_NO_NPM=1 cargo fuzz run $(t) corpus/$(t) $(FUZZ_SEEDS_$(t)) -- \
			-max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) && ) true

# Benchmarks: hlss against ffmpeg, GStreamer hlssink2 and nginx, measured in the same run, plus the
# criterion segmenter bench (it makes its 720p input with gst-launch-1.0). Prints the table and
# writes BENCHMARKS.md; about 10 minutes on 2 cores after the build. Settings: see `bench/run.py` (BENCH_RUNS=5 ...).
BENCH_PACKAGES := $(TEST_PACKAGES) wrk nginx python3

bench:
	$(call install_missing,$(BENCH_PACKAGES))
	cargo build --release --locked
	cargo bench --locked --bench segmenter --no-run
	python3 bench/run.py
