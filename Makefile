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
# Tests: real clients (GStreamer's HLS demuxer via gst-launch, ffmpeg/ffprobe) and media generation.
TEST_PACKAGES := $(RUN_PACKAGES) gstreamer1.0-tools ffmpeg

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

deps:
	$(call install_missing,$(RUN_PACKAGES))

test-deps:
	$(call install_missing,$(TEST_PACKAGES))

build: deps
	cargo build --release --locked

run: build
	./target/release/hlss --listen $(LISTEN) $(ARGS) $(MEDIA)

lint: test-deps
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

test: lint
	cargo test --locked
