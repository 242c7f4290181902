# longcall -- plain Makefile. `make run` and `make test` install what they
# need (Debian packages through conf/ensure-packages.sh) and say so.

VERSION  = 0.1.0
CC      ?= cc
PKGS     = jansson sqlite3 libcrypto libpq
WARN     = -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -DLONGCALL_VERSION='"$(VERSION)"'
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# libunistring (names: NFC and character classes) has no .pc file on Debian 12.
LDLIBS   = $(PKG_LIBS) -lunistring -lfcgi -lpthread
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BUILD_PKGS = gcc make pkg-config libfcgi-dev libjansson-dev libsqlite3-dev libssl-dev libunistring-dev \
             libpq-dev
RUN_PKGS   = lighttpd sqlite3
# make deb (conf/debian/): the Debian package's build and its check.
DEB_PKGS   = debhelper dpkg-dev build-essential fakeroot lintian
TEST_PKGS  = python3 curl procps chromium squid apache2 libapache2-mod-fcgid nginx spawn-fcgi \
             lighttpd-mod-openssl openssl coturn postgresql-15 prometheus $(DEB_PKGS)
# libFuzzer targets (tests/fuzz/): Debian's clang, and the package that
# holds libclang_rt.fuzzer for it (dpkg -S libclang_rt.fuzzer-x86_64.a).
FUZZ_PKGS  = clang libclang-rt-14-dev

SRC  = $(wildcard fcgi/*.c)
OBJ  = $(SRC:fcgi/%.c=build/obj/%.o) build/obj/migrations.o
AOBJ = $(SRC:fcgi/%.c=build/asan/%.o) build/asan/migrations.o
HDR  = $(wildcard fcgi/*.h)
UNIT = $(patsubst tests/unit/%.c,build/tests/%,$(wildcard tests/unit/test_*.c))

PORT  ?= 8080
PROCS ?= 1
# The Host names `make run` answers for (a page on another name that was
# rebound to 127.0.0.1 gets a 421; README "Security"); the environment's
# LONGCALL_ALLOWED_HOSTS, if set, is taken instead.
LONGCALL_ALLOWED_HOSTS ?= 127.0.0.1:$(PORT) localhost:$(PORT) [::1]:$(PORT)

.PHONY: all asan deps test-deps unit run test bench clean install-deps
all: build/longcall

build/obj build/asan build/tests:
	@mkdir -p $@

# Migrations are compiled in: db/NNN-name.sql become lc_migrations[NNN-1]
# (SQLite), db/pg/NNN-name.sql lc_pg_migrations[NNN-1] (PostgreSQL).
SQLITE_MIGRATIONS = $(sort $(wildcard db/[0-9][0-9][0-9]-*.sql))
PG_MIGRATIONS     = $(sort $(wildcard db/pg/[0-9][0-9][0-9]-*.sql))
build/migrations.c: $(SQLITE_MIGRATIONS) $(PG_MIGRATIONS) | build/obj
	@echo "  GEN   $@"
	@{ echo '/* generated from db/NNN-name.sql and db/pg/NNN-name.sql by the Makefile: do not edit */'; \
	  for kind in lc_migrations:"$(SQLITE_MIGRATIONS)" lc_pg_migrations:"$(PG_MIGRATIONS)"; do \
	    name=$${kind%%:*}; files=$${kind#*:}; \
	    echo "extern const char *const $$name[];"; \
	    echo "extern const int $${name%s}_count;"; \
	    echo "const char *const $$name[] = {"; \
	    for f in $$files; do sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $$f; echo '    ,'; done; \
	    echo '};'; \
	    echo "const int $${name%s}_count = sizeof $$name / sizeof $$name[0];"; \
	  done; } > $@

build/obj/%.o: fcgi/%.c $(HDR) | build/obj
	@echo "  CC    $<"
	@$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<
build/obj/migrations.o: build/migrations.c
	@$(CC) $(WARN) $(CFLAGS) -c -o $@ $<
build/longcall: $(OBJ)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

# The same program under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: build/asan/longcall
build/asan/%.o: fcgi/%.c $(HDR) | build/asan
	@echo "  CC    $< (asan)"
	@$(CC) $(CPPFLAGS) $(WARN) -O1 -g $(SAN) $(PKG_CFLAGS) -c -o $@ $<
build/asan/migrations.o: build/migrations.c | build/asan
	@$(CC) $(WARN) -O1 -g -c -o $@ $<
build/asan/longcall: $(AOBJ)
	@echo "  LD    $@"
	@$(CC) $(SAN) -o $@ $(AOBJ) $(LDLIBS)

# Unit tests #include the module under test; built with the sanitizers.
build/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(SRC) $(HDR) build/migrations.c | build/tests
	@echo "  CC    $<"
	@$(CC) $(CPPFLAGS) $(WARN) -O1 -g $(SAN) $(PKG_CFLAGS) -Ifcgi -o $@ $< build/migrations.c $(LDLIBS)

deps:
	@sh conf/ensure-packages.sh $(BUILD_PKGS) $(RUN_PKGS)
test-deps: deps fuzz-deps
	@sh conf/ensure-packages.sh $(TEST_PKGS)

# Browser tests (tests/browser/): playwright-core as pinned by its
# package-lock.json, installed by `npm ci` when missing; Chromium is Debian's.
.PHONY: browser-deps
test-deps: browser-deps
browser-deps: deps
	@command -v npm >/dev/null || sh conf/ensure-packages.sh nodejs npm
	@test -d tests/browser/node_modules/playwright-core || { \
	  echo "longcall: npm ci in tests/browser (playwright-core for the browser tests)"; \
	  cd tests/browser && npm ci --no-audit --no-fund --loglevel=error; }

unit: $(UNIT)

# ---- fuzzing (tests/fuzz/README.md) ----------------------------------------
# One libFuzzer program per tests/fuzz/fuzz_NAME.c, with AddressSanitizer and
# UndefinedBehaviorSanitizer; each #includes the modules it tests. `make fuzz`
# runs each for FUZZ_SECONDS on its corpus (tests/fuzz/corpus/NAME, read
# only): new inputs go to build/fuzz/new/NAME, crashes to build/fuzz/crash/.
# tests/fuzz/fuzz_NAME.flags, if present, holds extra libFuzzer flags.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_NAMES    = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN      = $(FUZZ_NAMES:%=build/fuzz/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-deps
fuzz-deps:
	@sh conf/ensure-packages.sh $(FUZZ_PKGS)
fuzz-build: deps fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
build/fuzz:
	@mkdir -p $@
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(SRC) $(HDR) build/migrations.c | build/fuzz
	@echo "  CC    $< (libFuzzer)"
	@$(FUZZ_CC) $(CPPFLAGS) $(WARN) -O1 -g $(FUZZ_SAN) $(PKG_CFLAGS) -Ifcgi -o $@ $< build/migrations.c $(LDLIBS)
fuzz: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	    mkdir -p build/fuzz/new/$$n build/fuzz/crash tests/fuzz/corpus/$$n; \
	    echo "longcall: fuzz_$$n for $(FUZZ_SECONDS) s"; \
	    nice -n 10 build/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $$(cat tests/fuzz/fuzz_$$n.flags 2>/dev/null) \
	        -artifact_prefix=build/fuzz/crash/$$n- build/fuzz/new/$$n tests/fuzz/corpus/$$n; \
	done

run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p var
	@echo "longcall: http://127.0.0.1:$(PORT)/ (lighttpd in the foreground; Ctrl-C stops it)"
	@ulimit -n 20000 2>/dev/null || true; \
	LONGCALL_ROOT=$(CURDIR) LONGCALL_BIN=$(CURDIR)/build/longcall LONGCALL_STATE=$(CURDIR)/var \
	LONGCALL_PORT=$(PORT) LONGCALL_PROCS=$(PROCS) LONGCALL_ALLOWED_HOSTS='$(LONGCALL_ALLOWED_HOSTS)' \
	exec lighttpd -D -f conf/lighttpd.conf

test: test-deps
	@$(MAKE) --no-print-directory all asan unit fuzz-build
	@python3 tests/run-tests

# make soak: SOAK_MINUTES (30) of mixed traffic through lighttpd, sampled
# every SOAK_SAMPLE seconds (60); fails unless memory, descriptors and the
# database level off (tests/soak/soak.py says how). Not part of make test.
SOAK_MINUTES ?= 30
SOAK_SAMPLE  ?= 60
.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory all
	@SOAK_MINUTES=$(SOAK_MINUTES) SOAK_SAMPLE=$(SOAK_SAMPLE) python3 tests/soak/soak.py

# BENCH_STORE=pg (and BENCH_NODES=2): a PostgreSQL of the bench's own and
# nginx as the balancer, installed when missing.
BENCH_PG_PKGS = postgresql-15 nginx procps python3
bench: deps
	@if [ "$(BENCH_STORE)" = pg ]; then sh conf/ensure-packages.sh $(BENCH_PG_PKGS); fi
	@$(MAKE) --no-print-directory all
	@bash tests/bench/run.sh

clean:
	rm -rf build

# ---- install / uninstall -------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=] writes only below
# $(DESTDIR)$(PREFIX) (and the systemd units into $(DESTDIR)$(UNITDIR)),
# never into /etc; make uninstall with the same variables removes exactly
# those files, and the folders that are longcall's own once they are empty.
# The example configurations get this PREFIX's paths filled in (the port
# stays a variable); STATEDIR and RUNDIR are where they expect the database
# and the systemd socket.
PREFIX   ?= /usr/local
DESTDIR  ?=
LIBDIR    = $(PREFIX)/lib/longcall
SHAREDIR  = $(PREFIX)/share/longcall
DOCDIR    = $(PREFIX)/share/doc/longcall
EXAMPLEDIR = $(DOCDIR)/examples
UNITDIR  ?= $(PREFIX)/lib/systemd/system
STATEDIR ?= /var/lib/longcall
RUNDIR   ?= /run/longcall
INSTALL  ?= install
WWW_FILES  = $(shell find www -type f ! -name '.*' 2>/dev/null | sort)
DB_FILES   = $(SQLITE_MIGRATIONS)
PG_DB_FILES = $(PG_MIGRATIONS)
CONF_FILES = lighttpd.conf lighttpd-tls.conf lighttpd-cgi.conf apache-proxy-fcgi.conf \
             apache-fcgid.conf nginx.conf turnserver.conf
UNIT_FILES = longcall.service longcall.socket
FILL = sed -e 's|env\.LONGCALL_ROOT|"$(SHAREDIR)"|g' \
	   -e 's|env\.LONGCALL_BIN|"$(LIBDIR)/longcall"|g' \
	   -e 's|env\.LONGCALL_STATE|"$(STATEDIR)"|g' \
	   -e 's|$${LONGCALL_ROOT}|$(SHAREDIR)|g;s|@LONGCALL_ROOT@|$(SHAREDIR)|g' \
	   -e 's|$${LONGCALL_BIN}|$(LIBDIR)/longcall|g' \
	   -e 's|$${LONGCALL_STATE}|$(STATEDIR)|g;s|@LONGCALL_STATE@|$(STATEDIR)|g' \
	   -e 's|$${LONGCALL_SOCKET}|$(RUNDIR)/longcall.sock|g;s|@LONGCALL_SOCKET@|$(RUNDIR)/longcall.sock|g' \
	   -e 's|@LIBDIR@|$(LIBDIR)|g;s|@DOCDIR@|$(DOCDIR)|g'

.PHONY: install uninstall
install: build/longcall
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SHAREDIR)/db/pg $(DESTDIR)$(EXAMPLEDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 build/longcall $(DESTDIR)$(LIBDIR)/longcall
	$(INSTALL) -m 644 $(DB_FILES) $(DESTDIR)$(SHAREDIR)/db/
	$(INSTALL) -m 644 $(PG_DB_FILES) $(DESTDIR)$(SHAREDIR)/db/pg/
	@set -e; for f in $(WWW_FILES); do \
	    echo "$(INSTALL) -D -m 644 $$f $(DESTDIR)$(SHAREDIR)/$$f"; \
	    $(INSTALL) -D -m 644 $$f $(DESTDIR)$(SHAREDIR)/$$f; done
	@set -e; for f in $(CONF_FILES); do \
	    echo "  FILL  $(DESTDIR)$(EXAMPLEDIR)/$$f"; \
	    $(FILL) conf/$$f > $(DESTDIR)$(EXAMPLEDIR)/$$f; chmod 644 $(DESTDIR)$(EXAMPLEDIR)/$$f; done
	@set -e; for f in $(UNIT_FILES); do \
	    echo "  FILL  $(DESTDIR)$(UNITDIR)/$$f"; \
	    $(FILL) conf/$$f > $(DESTDIR)$(UNITDIR)/$$f; chmod 644 $(DESTDIR)$(UNITDIR)/$$f; done
	$(INSTALL) -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	@echo "longcall installed under $(DESTDIR)$(PREFIX); nothing was enabled or started (see README, 'Install')."

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/longcall
	rm -f $(addprefix $(DESTDIR)$(SHAREDIR)/,$(DB_FILES) $(PG_DB_FILES) $(WWW_FILES))
	rm -f $(addprefix $(DESTDIR)$(EXAMPLEDIR)/,$(CONF_FILES)) $(DESTDIR)$(DOCDIR)/README.md
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNIT_FILES))
	@# longcall's own folders, deepest first, only if empty (rmdir refuses otherwise)
	@for d in $$(cd $(DESTDIR)$(SHAREDIR) 2>/dev/null && find www -depth -type d 2>/dev/null); do \
	    rmdir $(DESTDIR)$(SHAREDIR)/$$d 2>/dev/null || true; done
	@for d in $(SHAREDIR)/db/pg $(SHAREDIR)/db $(SHAREDIR) $(EXAMPLEDIR) $(DOCDIR) $(LIBDIR); do \
	    rmdir $(DESTDIR)$$d 2>/dev/null || true; done

# ---- Debian package ---------------------------------------------------------
# make deb: a copy of the sources in build/deb/longcall-VERSION/ with
# conf/debian/ as its debian/, built there by dpkg-buildpackage (debhelper,
# conf/debian/rules); the package is copied to build/ and its path printed.
# Writes nothing outside build/; not part of `make` or `make all`.
# conf/debian/changelog's version must be the Makefile's VERSION.
DEB_ARCH  = $(shell dpkg --print-architecture 2>/dev/null)
DEB_STAGE = build/deb/longcall-$(VERSION)
DEB_FILE  = build/longcall_$(VERSION)_$(DEB_ARCH).deb
DEB_SRC   = Makefile README.md fcgi db www conf
.PHONY: deb deb-deps
deb-deps:
	@sh conf/ensure-packages.sh $(BUILD_PKGS) $(DEB_PKGS)
deb: deb-deps
	@v=$$(dpkg-parsechangelog -l conf/debian/changelog -S Version); \
	if [ "$$v" != "$(VERSION)" ]; then \
	    echo "longcall: conf/debian/changelog's version is $$v, the Makefile's VERSION $(VERSION):" \
	         "add an entry (dch -c conf/debian/changelog -v $(VERSION))" >&2; exit 1; fi
	@rm -rf build/deb $(DEB_FILE)
	@mkdir -p $(DEB_STAGE)
	@cp -R $(DEB_SRC) $(DEB_STAGE)/
	@cp -R conf/debian $(DEB_STAGE)/debian
	@echo "longcall: dpkg-buildpackage -us -uc -b in $(DEB_STAGE) (log: build/deb/build.log)"
	@cd $(DEB_STAGE) && DEB_BUILD_OPTIONS="parallel=$$(nproc) $$DEB_BUILD_OPTIONS" \
	    dpkg-buildpackage -us -uc -b >../build.log 2>&1 || { tail -n 40 ../build.log >&2; exit 1; }
	@cp build/deb/$(notdir $(DEB_FILE)) $(DEB_FILE)
	@echo $(DEB_FILE)
