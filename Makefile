# Cruder's build. `make` builds build/cruder; `make run` installs what is
# missing, builds and starts the embedded server; `make test` runs every test.
# See README.md.

CC      ?= cc
BUILD   ?= build
PKGS    := libuv jansson sqlite3 libsodium
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

.PHONY: all run test deps unit node fuzz asan bench clean format

all: $(BUILD)/cruder

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/cruder: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libcruder.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Unit tests (Criterion), one binary per file; a test may #include the .c under
# test to reach its statics.
$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libcruder.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libcruder.a $(LDLIBS) -lcriterion

deps:
	@scripts/install-deps.sh

run: deps all
	$(BUILD)/cruder serve

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t --jobs 1; done

-include $(OBJS:.o=.d)
