# Cruder's build. `make` builds build/cruder; `make run` installs what is
# missing, builds and starts the embedded server; `make test` runs every test
# (deps, build, unit, fuzz, node, asan) and ends with a one-line summary.
# `make help` lists the targets. See README.md.

CC      ?= cc
BUILD   ?= build
JOBS    ?= 2
PKGS    := libuv jansson sqlite3 libsodium vips zlib
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Isrc -Wall -Wextra -Wshadow -Wformat=2 -Wvla \
               -Wstrict-prototypes -Wno-unused-parameter -Werror -g -MMD -MP \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
OPT     ?= -O2
CFLAGS  += $(CFLAGS_BASE) $(OPT)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS  += -DCRUDER_VERSION='"$(VERSION)"'

SRCS      := $(shell find src -name '*.c' | sort)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
OBJS      := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(shell find tests/unit -name '*.c' 2>/dev/null | sort)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
NODE_TESTS := $(shell find tests/node -name '*.test.mjs' 2>/dev/null | sort)

# The console's assets (web/), embedded at build time: fingerprinted names,
# gzip and Brotli variants (tools/embed-web.sh, api/files.h).
WEB_FILES := $(shell find web -type f 2>/dev/null | sort)
WEB_GEN   := $(BUILD)/gen/web_assets.c
WEB_OBJ   := $(BUILD)/gen/web_assets.o

# Sanitizer build: the same sources and tests, compiled into build-asan/.
ASAN_BUILD := build-asan
ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_ENV   := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
              UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# Fuzzing: libFuzzer wants clang. Every src/ file but main.c goes into one
# instrumented archive, so a target needs no list of the sources it uses.
# Warnings are the gcc build's job; here they would only fail on clang-only
# diagnostics in files still being written.
FUZZ_CC      ?= clang
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_SECONDS ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := $(filter-out -Werror,$(CFLAGS_BASE)) -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
                -DCRUDER_VERSION='"$(VERSION)"' -DCRUDER_FUZZING
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_SRCS    := $(shell find tests/fuzz -maxdepth 1 -name 'fuzz_*.c' 2>/dev/null | sort)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

FORMAT_FILES = $(shell find src tests/unit tests/fuzz -name '*.[ch]' 2>/dev/null | sort)
CLANG_FORMAT ?= clang-format-14

.PHONY: all run test deps build unit unit-bins node fuzz fuzz-bins asan bench clean format \
        format-check help

all: $(BUILD)/cruder

help:
	@echo 'make              build $(BUILD)/cruder'
	@echo 'make run          install deps, build, start the embedded server'
	@echo 'make test         deps, build, unit, fuzz, node, asan; one summary line at the end'
	@echo 'make unit|fuzz|node|asan   one step (FUZZ_SECONDS=$(FUZZ_SECONDS) per fuzz target)'
	@echo 'make bench        bench/run.sh: wrk against nginx static and cruder'
	@echo 'make format|format-check   clang-format 14 with .clang-format'
	@echo 'make console     rebuild web/assets/ from console/ (esbuild)'
	@echo 'make clean'

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/cruder: $(OBJS) $(WEB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libcruder.a: $(LIB_OBJS) $(WEB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The console's assets (web/), embedded at build time (tools/embed-web.sh).
$(WEB_GEN): tools/embed-web.sh $(WEB_FILES)
	@mkdir -p $(dir $@)
	tools/embed-web.sh web $@

$(WEB_OBJ): $(WEB_GEN)
	$(CC) $(CFLAGS) -c $< -o $@

# The console's source (console/) is bundled by esbuild into web/assets/,
# offline from package-lock.json. The bundle is committed, so building the
# server needs no node; tests/node/console.test.mjs fails when it is stale.
.PHONY: console
console:
	node console/build.mjs

# Unit tests (Criterion), one binary per file; a test may #include the .c under
# test to reach its statics.
$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libcruder.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(BUILD)/libcruder.a $(LDLIBS) -lcriterion

deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	$(BUILD)/cruder serve

test:
	@scripts/test.sh

build: $(BUILD)/cruder unit-bins

unit-bins: $(UNIT_BINS)

# Criterion forks a process per test; --jobs 1 keeps the 2-core budget.
unit: unit-bins
	@failed=; for t in $(UNIT_BINS); do echo "-- $$t"; $$t --jobs 1 --short-filename || failed="$$failed $${t##*/}"; \
	done; if [ -n "$$failed" ]; then echo "unit FAILED:$$failed"; exit 1; fi

node: $(BUILD)/cruder
	@if [ -z "$(NODE_TESTS)" ]; then echo "no tests/node/**/*.test.mjs"; exit 0; fi; \
	 CRUDER_BIN=$(BUILD)/cruder timeout 1200 node --test $(NODE_TESTS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/gen/web_assets.o: $(WEB_GEN)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libcruder-fuzz.a: $(FUZZ_OBJS) $(FUZZ_BUILD)/gen/web_assets.o
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libcruder-fuzz.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libcruder-fuzz.a $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)

# Each target runs FUZZ_SECONDS from its committed corpus. New inputs go to a
# scratch corpus under build/ so the tree stays clean; a crash leaves its input
# in $(FUZZ_BUILD)/artifacts/ and fails the step.
fuzz: fuzz-bins
	@failed=; for f in $(FUZZ_BINS); do \
	    name=$${f##*/fuzz_}; seeds=tests/fuzz/corpus/$$name; work=$(FUZZ_BUILD)/corpus/$$name; \
	    mkdir -p $$work $(FUZZ_BUILD)/artifacts; \
	    echo "-- $$f: $(FUZZ_SECONDS) s from $$seeds"; \
	    if $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$name- $$work $$( [ -d $$seeds ] && echo $$seeds ) \
	        2>$(FUZZ_BUILD)/$$name.log; then \
	        grep -E '^stat::number_of_executed_units' $(FUZZ_BUILD)/$$name.log || true; \
	    else \
	        tail -n 60 $(FUZZ_BUILD)/$$name.log; failed="$$failed fuzz_$$name"; \
	    fi; \
	done; if [ -n "$$failed" ]; then \
	    echo "fuzz FAILED:$$failed (inputs in $(FUZZ_BUILD)/artifacts/)"; exit 1; fi

# The whole build again with ASan+UBSan, then the unit and node tests on it
# (-k: the node tests run even when a unit test fails).
asan:
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=$(ASAN_BUILD) OPT='$(ASAN_FLAGS)' \
	    LDFLAGS='-fsanitize=address,undefined' build
	@$(ASAN_ENV) $(MAKE) --no-print-directory -k BUILD=$(ASAN_BUILD) OPT='$(ASAN_FLAGS)' \
	    LDFLAGS='-fsanitize=address,undefined' unit node

bench:
	@bench/run.sh

format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-release

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d) $(FUZZ_OBJS:.o=.d) $(FUZZ_BINS:=.d)
