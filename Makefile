# s2: a coordination server for swarms of AI agents.
#   make            build ./s2
#   make run        set up, initialise ./s2.db when missing, serve on 127.0.0.1:7411
#   make test       build and run every test (also under ASan+UBSan); last line: N passed, N failed
#   make bench      s2 bench against a fresh server, both durability modes (docs/BENCHMARKS.md)
#   make bench-worker  s2 worker: 1000 tasks through one worker (bench/worker.sh)
#   make bench-pg   s2 on two PostgreSQL nodes vs a plain SKIP LOCKED loop (bench/pg.sh)
#   make bench-suite   scale (1M tasks), governor, plan apply, git hook (bench/suite.sh)
#   make check-long long campaigns (soak, big crash loops)
#   make SANITIZE=address,undefined   the sanitizer build, in build-asan/
#   make install    PREFIX=/usr/local
#   make fmt        apply .clang-format

CC ?= cc
PREFIX ?= /usr/local
PKGS := sqlite3 libsodium libmicrohttpd libcurl jansson yaml-0.1 libseccomp libgit2 libpq

ifeq ($(SANITIZE),)
BUILD := build
OPT := -O2
else
BUILD := build-asan
OPT := -O1 -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif

WARN := -std=c11 -Wall -Wextra -Wformat=2 -Wno-missing-field-initializers -Werror
# Lazily expanded: on a fresh machine the packages arrive (deps) after the Makefile is read.
# (evaluated once, on first use)
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null))$(PKG_LIBS)
CPPFLAGS += -D_GNU_SOURCE -Isrc -I$(BUILD)/gen
CFLAGS = $(WARN) $(OPT) -g -pthread $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += $(if $(SANITIZE),-fsanitize=$(SANITIZE)) -pthread
LDLIBS = $(PKG_LIBS) -lm

SRCS := $(wildcard src/*.c src/util/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
GEN_OBJS := $(BUILD)/gen/web_assets.o $(BUILD)/gen/wasm_assets.o
OBJS := $(SRCS:%.c=$(BUILD)/%.o) $(GEN_OBJS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(GEN_OBJS)
WEB := $(sort $(wildcard web/*))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
DRIVER_SRCS := $(wildcard tests/integration/*.c)
DRIVER_BINS := $(DRIVER_SRCS:tests/integration/%.c=$(BUILD)/tests/%)

S2 := $(if $(SANITIZE),$(BUILD)/s2,s2)

all: deps $(S2)

# Install missing Debian packages once (marker file), so a fresh machine just works.
deps: $(BUILD)/.deps
$(BUILD)/.deps: scripts/bootstrap.sh
	@scripts/bootstrap.sh
	@mkdir -p $(BUILD) && touch $@

# `make V=1` shows the full commands.
Q := $(if $(V),,@)
say = $(if $(V),,@echo "  $(1)	$(2)";)

$(S2): $(OBJS)
	$(call say,LINK,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# The dashboard's files are compiled into the binary (no CDN, works offline).
$(BUILD)/tools/embed: tools/embed.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -o $@ $<
$(BUILD)/gen/web_assets.c: $(BUILD)/tools/embed $(WEB)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ $(WEB)
$(BUILD)/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
# The WASI host that `s2 worker --wasm` compiles with each module (src/wasm/, not part of s2).
$(BUILD)/gen/wasm_assets.c: $(BUILD)/tools/embed src/wasm/wasi_host.c
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ -n wasm src/wasm/wasi_host.c
$(BUILD)/gen/wasm_assets.o: $(BUILD)/gen/wasm_assets.c
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(call say,TEST,$@)$(CC) $(CPPFLAGS) $(CFLAGS) -DUNIT_TEST -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS) -lcmocka

$(BUILD)/tests/%: tests/integration/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(call say,DRIVER,$@)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS)

test-bins: $(S2) $(UNIT_BINS) $(DRIVER_BINS)

# The whole suite, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
test:
	@scripts/bootstrap.sh test
	@$(MAKE) --no-print-directory -j$$(nproc) test-bins
	@$(MAKE) --no-print-directory -j$$(nproc) SANITIZE=address,undefined test-bins
	@tests/run.sh

check-long: test-bins
	@S2_LONG=1 tests/run.sh --long

bench: $(S2)
	@bench/run.sh

# 1M tasks and restart, the governor at work, plan apply of 100k tasks, git hook latency.
bench-suite: $(S2)
	@bench/suite.sh

# s2 worker end to end: 1000 trivial tasks, --concurrency 2, tasks/s and sandbox start.
bench-worker: $(S2)
	@bench/worker.sh

# s2 on two PostgreSQL nodes against a plain SKIP LOCKED loop on the same PostgreSQL.
bench-pg: $(S2) $(BUILD)/bench/pgloop
	@bench/pg.sh

$(BUILD)/bench/pgloop: bench/pgloop.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)

run: $(S2)
	@scripts/run.sh

install: $(S2)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 s2 $(DESTDIR)$(PREFIX)/bin/s2

fmt:
	clang-format -i $(SRCS) $(wildcard src/*.h src/util/*.h) $(UNIT_SRCS) $(DRIVER_SRCS)

clean:
	rm -rf build build-asan s2 tests/out

.PHONY: all deps test test-bins check-long bench bench-worker bench-pg bench-suite run install fmt clean
.DELETE_ON_ERROR:

-include $(OBJS:.o=.d)
