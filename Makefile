# flatline — build, run the bundled example, test, install.
#   make run    build and show the lifecycle view of examples/run
#   make test   every check CI runs: fmt, clippy, the tests, the man page lint

CARGO  ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
MANDIR := $(PREFIX)/share/man/man1
BASHDIR := $(PREFIX)/share/bash-completion/completions
ZSHDIR  := $(PREFIX)/share/zsh/site-functions
FISHDIR := $(PREFIX)/share/fish/vendor_completions.d
BIN    := target/release/flatline
# The static binary needs an explicit target: with it, crt-static applies to the binary
# and not to the build scripts and proc-macros, which cannot be static.
HOST   := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
STATIC := target/$(HOST)/release/flatline
# The instant the bundled example was written for: its ages stay meaningful forever.
EXAMPLE_NOW := 2026-11-22T08:00:00Z

.PHONY: all build run test man man-lint static static-check install uninstall clean

all: build

build:
	$(CARGO) build --release --locked

run: build
	$(BIN) status --format text --summary --now $(EXAMPLE_NOW) examples/run

test:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked
	@$(MAKE) --no-print-directory man-lint
	@$(MAKE) --no-print-directory static-check

# Lints the committed page (a unit test already checks it equals the generated one).
man-lint:
	@if command -v mandoc >/dev/null 2>&1; then \
		echo "mandoc -Tlint man/flatline.1"; \
		out=$$(mandoc -Tlint man/flatline.1 2>&1); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
	elif [ -n "$$CI" ]; then \
		echo "mandoc is missing, and CI must skip nothing (.ci/run installs it)"; exit 1; \
	else \
		echo "SKIPPED: mandoc -Tlint man/flatline.1 (mandoc is not installed; apt-get install mandoc)"; \
	fi

# Every SPEC §8 measurement side by side (bench/run.sh; figures in BENCHMARKS.md). Not part
# of `make test` or CI: it takes several minutes and spawns hundreds of processes.
.PHONY: bench
bench: build
	bash bench/run.sh $(BIN)

# A fully static binary (glibc, crt-static) for FROM-scratch containers and empty roots.
static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target $(HOST)
	@echo "$(STATIC)"

# No NEEDED library, and it runs in an empty root (chroot).
static-check: static
	bash contrib/static-check.sh $(STATIC)

man: build
	$(BIN) --generate man > man/flatline.1

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/flatline
	install -m 0644 man/flatline.1 $(DESTDIR)$(MANDIR)/flatline.1
	install -d $(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR)
	$(BIN) --generate bash > $(DESTDIR)$(BASHDIR)/flatline
	$(BIN) --generate zsh > $(DESTDIR)$(ZSHDIR)/_flatline
	$(BIN) --generate fish > $(DESTDIR)$(FISHDIR)/flatline.fish
	chmod 0644 $(DESTDIR)$(BASHDIR)/flatline $(DESTDIR)$(ZSHDIR)/_flatline $(DESTDIR)$(FISHDIR)/flatline.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/flatline $(DESTDIR)$(MANDIR)/flatline.1
	rm -f $(DESTDIR)$(BASHDIR)/flatline $(DESTDIR)$(ZSHDIR)/_flatline $(DESTDIR)$(FISHDIR)/flatline.fish

clean:
	$(CARGO) clean
