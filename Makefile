# twhookd — GNU Makefile. One build directory per flavour so objects never mix:
#   build/release (default), build/asan (ASan + UBSan), build/fuzz (clang libFuzzer).
# Everything but main.o goes into libtwhookd.a, which tests and fuzzers link.

PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
SBINDIR		?= $(PREFIX)/sbin
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= /etc
UNITDIR		?= /lib/systemd/system
DESTDIR		?=

FLAVOUR		?= release
BUILD		:= build/$(FLAVOUR)
PYTHON		:= /usr/bin/python3

PKGS		:= libmicrohttpd gnutls libsodium inih sqlite3 libpq jansson libsystemd libcurl
TEST_PKGS	:= cmocka

SRCS := \
	src/buf.c \
	src/clock.c \
	src/log.c \
	src/log_escape.c \
	src/phone.c \
	src/form.c \
	src/signature.c \
	src/twiml.c \
	src/template.c \
	src/config.c \
	src/config_keys.c \
	src/secret.c \
	src/store.c \
	src/store_sqlite.c \
	src/store_sqlite_webhook.c \
	src/store_sqlite_outbox.c \
	src/store_sqlite_checkpoint.c \
	src/store_sqlite_schema.c \
	src/store_pg.c \
	src/store_pg_conn.c \
	src/store_pg_sql.c \
	src/store_pg_schema.c \
	src/store_pg_webhook.c \
	src/store_pg_outbox.c \
	src/store_pg_user.c \
	src/public_url.c \
	src/metrics.c \
	src/tls.c \
	src/conn_table.c \
	src/handler.c \
	src/handler_reset.c \
	src/handler_pin.c \
	src/handler_status.c \
	src/twilio_api.c \
	src/outbox.c \
	src/admin.c \
	src/batch.c \
	src/health.c \
	src/pipeline.c \
	src/server.c \
	src/serve.c \
	src/cli.c \
	src/cli_sign.c \
	src/cli_user.c

MAIN_SRC	:= src/main.c
UNIT_TESTS	:= $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
FUZZ_TARGETS	:= $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

WARNINGS := -Wall -Wextra -Wpedantic -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wcast-qual -Wwrite-strings -Wvla -Wimplicit-fallthrough \
	-Wconversion -Wsign-conversion
ifdef CI
WARNINGS += -Werror
endif
ifdef WERROR
WARNINGS += -Werror
endif

HARDEN	:= -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection \
	-fcf-protection -fPIE
LDHARDEN := -pie -Wl,-z,relro,-z,now

ifeq ($(FLAVOUR),asan)
OPT	:= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
HARDEN	:= -fstack-protector-strong -fPIE
LDOPT	:= -fsanitize=address,undefined
else
OPT	:= -O2 -g
LDOPT	:=
endif

# Evaluated on first use, once: on a fresh machine pkg-config only answers
# after install-deps (an order-only prerequisite of every object) has run.
PKG_CFLAGS	= $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS	= $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
TEST_CFLAGS	= $(eval TEST_CFLAGS := $(shell pkg-config --cflags $(TEST_PKGS)))$(TEST_CFLAGS)
TEST_LIBS	= $(eval TEST_LIBS := $(shell pkg-config --libs $(TEST_PKGS)))$(TEST_LIBS)

CC		?= cc
CFLAGS		?=
CPPFLAGS	+= -D_GNU_SOURCE -Isrc
ALL_CFLAGS	= -std=c17 $(WARNINGS) $(OPT) $(HARDEN) -MMD -MP $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS	:= $(LDOPT) $(LDHARDEN) $(LDFLAGS)
LIBS		= $(PKG_LIBS) -lpthread

OBJS		:= $(SRCS:%.c=$(BUILD)/%.o)
LIB		:= $(BUILD)/libtwhookd.a
BIN		:= $(BUILD)/twhookd

.PHONY: all deps-check check unit integration asan run install uninstall clean deps bench attack fuzz fuzz-replay lint
all: deps-check $(BIN)

# Install what a fresh Debian 12 machine lacks (idempotent, quick when present).
deps:
	@scripts/install-deps

deps-check:
	@scripts/install-deps --if-missing

$(BUILD)/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/unit/%.o: tests/unit/%.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(BUILD)/unit/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LIBS)

# Fuzz targets built as plain programs that replay their corpus.
$(BUILD)/tests/fuzz/%.o: tests/fuzz/%.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -Wno-missing-prototypes -c $< -o $@

$(BUILD)/replay/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# make bench's libmicrohttpd floor: twhookd's listener with nothing behind it.
FLOOR		:= $(BUILD)/bench/mhd_floor

$(BUILD)/bench/%.o: bench/%.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

FLOOR_LIBS	= $(eval FLOOR_LIBS := $(shell pkg-config --libs libmicrohttpd))$(FLOOR_LIBS)

$(FLOOR): $(BUILD)/bench/mhd_floor.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(FLOOR_LIBS) -lpthread

UNIT_BINS	:= $(UNIT_TESTS:%=$(BUILD)/unit/%)
REPLAY_BINS	:= $(FUZZ_TARGETS:%=$(BUILD)/replay/%)

# One scratch PostgreSQL cluster for the whole unit run (the store contract's
# PostgreSQL half reads TWHOOKD_TEST_PG_DSN), stopped however the run ends.
unit: deps-check $(UNIT_BINS)
	@set -e; pg=$$(scripts/pg-scratch start); \
	pgdir=$$(printf '%s\n' "$$pg" | sed -n 1p); \
	trap 'scripts/pg-scratch stop "$$pgdir"' EXIT INT TERM; \
	export TWHOOKD_TEST_PG_DSN="$$(printf '%s\n' "$$pg" | sed -n 2p)"; \
	for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

fuzz-replay: deps-check $(REPLAY_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		d=tests/fuzz/corpus/$${t#fuzz_}; \
		echo "== replay $$t ($$d)"; $(BUILD)/replay/$$t $$d/*; done

integration: deps-check $(BIN)
	TWHOOKD_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/integration

# The bench floor is built here too, so the warnings CI treats as errors cover it.
check: deps-check
	$(MAKE) --no-print-directory $(FLOOR) unit fuzz-replay integration

asan:
	$(MAKE) --no-print-directory FLAVOUR=asan check

# libFuzzer builds need clang; each target runs FUZZ_SECONDS (default 60).
FUZZ_SECONDS	?= 60
fuzz:
	@scripts/install-deps --fuzz
	@scripts/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

run: deps-check $(BIN)
	@scripts/demo $(abspath $(BIN))

bench: deps-check $(BIN) $(FLOOR)
	@scripts/install-deps --bench
	@BENCH_FLOOR=$(abspath $(FLOOR)) bench/run $(abspath $(BIN))

# Minutes of hostile traffic (slowloris, floods) and a table of outcomes.
attack: deps-check $(BIN)
	@scripts/install-deps --attack
	@bench/attack $(abspath $(BIN))

install: $(BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(SYSCONFDIR)/twhookd $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/twhookd
	install -m 0644 man/twhookd.8 $(DESTDIR)$(MANDIR)/man8/twhookd.8
	install -m 0644 man/twhookd.ini.5 $(DESTDIR)$(MANDIR)/man5/twhookd.ini.5
	sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/twhookd.service > $(DESTDIR)$(UNITDIR)/twhookd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/twhookd.service
	test -e $(DESTDIR)$(SYSCONFDIR)/twhookd/twhookd.ini || \
		install -m 0644 conf/twhookd.ini $(DESTDIR)$(SYSCONFDIR)/twhookd/twhookd.ini

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/twhookd $(DESTDIR)$(MANDIR)/man8/twhookd.8 \
		$(DESTDIR)$(MANDIR)/man5/twhookd.ini.5 $(DESTDIR)$(UNITDIR)/twhookd.service

lint:
	mandoc -Tlint -Wwarning man/twhookd.8 man/twhookd.ini.5

clean:
	rm -rf build run

-include $(OBJS:.o=.d) $(BUILD)/src/main.d $(wildcard $(BUILD)/tests/*/*.d) $(wildcard $(BUILD)/bench/*.d)
.PRECIOUS: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/unit/%.o
