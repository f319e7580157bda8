# orchd — one non-recursive Makefile for the whole tree.
#
#   make                      build orchd, the protocol library, every extension
#   make check                build and run the test suite
#   make check SANITIZE=address,undefined
#   make check-fast           the tests that need no tool of `make tools` (< 1 min)
#   make install PREFIX=/usr/local DESTDIR=
#   make deps                 install missing Debian build dependencies
#   make tools                build the pinned infrastructure tools (tests/tools)
#   make lint                 clang-format check + cppcheck
#   make bench                run the benchmarks in bench/
#   make fuzz                 libFuzzer targets (clang, ASan+UBSan), FUZZ_TIME s each
#                             (or FUZZ_RUNS executions each): tests/fuzz/README.md
#
# Outputs go to $(BUILD) (build/, or build/san-* under SANITIZE); the tree is
# laid out like the installed one, so build/bin/orchd finds its extensions in
# build/libexec/orchd/extensions exactly as an installed orchd does.

.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := all

VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR    = $(PREFIX)/bin
LIBDIR    = $(PREFIX)/lib
INCDIR    = $(PREFIX)/include
LIBEXECDIR = $(PREFIX)/libexec
MANDIR    = $(PREFIX)/share/man
SDKDIR    = $(PREFIX)/share/orchd/sdk
PKGCONFIGDIR = $(LIBDIR)/pkgconfig

CC       ?= cc
SANITIZE ?=
PKG_CONFIG ?= pkg-config

ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build/san-$(subst $(comma),-,$(SANITIZE))
endif
comma := ,

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
	-Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
	-Wformat=2 -Wformat-security -Wvla -Wundef -Wwrite-strings \
	-Wimplicit-fallthrough -Wmissing-declarations -Wredundant-decls \
	-Wnested-externs -Wno-missing-field-initializers

OPT ?= -O2 -g
CPPFLAGS_ALL := -D_GNU_SOURCE -DORCHD_VERSION='"$(VERSION)"' \
	-DORCHD_PREFIX='"$(PREFIX)"' -Icommon -Iprotocol -Iorchestrator
CFLAGS_ALL := -std=c17 $(OPT) $(WARN) -fno-strict-aliasing -pthread -MMD -MP
LDFLAGS_ALL := -pthread
ifneq ($(SANITIZE),)
CFLAGS_ALL += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_ALL += -fsanitize=$(SANITIZE)
endif

PKGS := yaml-0.1 json-c libgit2 libcurl libcrypto libseccomp
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
JSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags json-c 2>/dev/null)
JSON_LIBS   := $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

override CFLAGS  := $(CFLAGS_ALL) $(CFLAGS)
override CPPFLAGS := $(CPPFLAGS_ALL) $(CPPFLAGS)
override LDFLAGS := $(LDFLAGS_ALL) $(LDFLAGS)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# --- sources -----------------------------------------------------------------
COMMON_SRC := $(sort $(wildcard common/*.c))
PROTO_SRC  := $(sort $(wildcard protocol/*.c))
ORCH_SRC   := $(sort $(wildcard orchestrator/*/*.c))
MAIN_SRC   := orchestrator/main.c
EXT_NAMES  := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard extensions/*/manifest.json)))))
TEST_SRC   := $(sort $(wildcard tests/test_*.c))
TESTLIB_SRC := tests/testutil.c tests/extdriver.c tests/etcdsim.c tests/kcluster.c
TEST_HELPER_SRC := $(sort $(wildcard tests/helpers/*.c))

COMMON_OBJ := $(call obj,$(COMMON_SRC))
PROTO_OBJ  := $(call obj,$(PROTO_SRC))
ORCH_OBJ   := $(call obj,$(ORCH_SRC))

PROTO_LIB  := $(BUILD)/lib/liborchd-protocol.a
ORCHD      := $(BUILD)/bin/orchd
EXT_DIR    := $(BUILD)/libexec/orchd/extensions
EXT_BINS   := $(addprefix $(EXT_DIR)/orchd-ext-,$(EXT_NAMES))
TEST_BIN   := $(BUILD)/tests/orchd-tests
TEST_HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(TEST_HELPER_SRC))

EXT_MANIFESTS := $(addsuffix .manifest.json,$(EXT_BINS))

# The SDK as it is installed: the header under include/orchd/, the library
# and its pkg-config file under lib/ (an extension built against the build
# tree sees exactly what an out-of-tree one sees after `make install`).
PROTO_HDR  := $(BUILD)/include/orchd/orchd_protocol.h
PROTO_PC   := $(BUILD)/lib/pkgconfig/orchd-protocol.pc

PROBE      := $(BUILD)/libexec/orchd/probe/orchd-ext-probe
REAPER     := $(BUILD)/libexec/orchd/orchd-reaper

all: $(ORCHD) $(PROTO_LIB) $(EXT_BINS) $(EXT_MANIFESTS) $(PROTO_HDR) $(PROTO_PC) $(PROBE) $(REAPER)

# --- objects -----------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -I$(BUILD)/tests $(PKG_CFLAGS) $(CHECK_CFLAGS) $(CFLAGS) -c -o $@ $<

# The protocol library is self-contained (json-c only) so that C extensions
# can link it without the rest of orchd; orchd links it too (its buffers,
# framing, codec).
$(PROTO_LIB): $(PROTO_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(ORCHD): $(call obj,$(MAIN_SRC)) $(ORCH_OBJ) $(COMMON_OBJ) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# The first process of every extension (orchestrator/reaper.c): started by
# exec, not as a fork of orchd; it links the sandbox and nothing else.
$(REAPER): $(call obj,orchestrator/reaper.c orchestrator/handlers/sandbox.c \
    orchestrator/handlers/cgroup.c orchestrator/core/logging.c common/util.c) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs libseccomp 2>/dev/null) $(JSON_LIBS)

# The probe of `orchd doctor --verify`: an extension of orchd's own, kept
# out of the extension search path.
$(PROBE): $(call obj,orchestrator/probe.c) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(JSON_LIBS)

# --- extensions: extensions/T/*.c -> orchd-ext-T, linked with the protocol
# library and json-c (an extension never links libgit2 or libcurl; it asks
# the core), plus what an optional extensions/T/ext.mk declares as
# EXT_CFLAGS_T / EXT_LIBS_T (e.g. libcrypto).  They are compiled as an
# out-of-tree extension is: only the installed header <orchd/orchd_protocol.h>
# is on the include path (no protocol/, common/ or orchestrator/), with the
# same warnings.  Each extension's own Makefile builds the same standalone
# against an installed orchd (see README.md, "Extensions").
-include $(wildcard extensions/*/ext.mk)
EXT_CPPFLAGS := -D_GNU_SOURCE -I$(BUILD)/include

$(BUILD)/obj/extensions/%.o: extensions/%.c $(PROTO_HDR)
	@mkdir -p $(@D)
	$(CC) $(EXT_CPPFLAGS) $(JSON_CFLAGS) $(EXT_CFLAGS_$(firstword $(subst /, ,$*))) \
	  $(CFLAGS) -c -o $@ $<

define EXT_RULE
$(EXT_DIR)/orchd-ext-$(1): $(call obj,$(sort $(wildcard extensions/$(1)/*.c))) $(PROTO_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(JSON_LIBS) $$(EXT_LIBS_$(1))

$(EXT_DIR)/orchd-ext-$(1).manifest.json: extensions/$(1)/manifest.json
	@mkdir -p $$(@D)
	cp $$< $$@
endef
$(foreach e,$(EXT_NAMES),$(eval $(call EXT_RULE,$(e))))

$(PROTO_HDR): protocol/orchd_protocol.h
	@mkdir -p $(@D)
	cp $< $@

# `warnings` is the warning set of this Makefile (with -Werror): a
# standalone extension takes it from here (pkg-config --variable=warnings),
# so that it is built exactly as strictly as the extensions in this tree.
$(PROTO_PC): Makefile
	@mkdir -p $(@D)
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' \
	  'libdir=$${prefix}/lib' 'warnings=$(WARN)' '' 'Name: orchd-protocol' \
	  'Description: orchd extension protocol library (the SDK of C extensions)' \
	  'Version: $(VERSION)' 'Requires.private: json-c' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lorchd-protocol' > $@

# --- tests -------------------------------------------------------------------
# Each tests/test_NAME.c defines `Suite *NAME_suite(void)`; the list of suites
# is generated, so adding a module's tests needs no edit elsewhere.
$(BUILD)/tests/suites.h: $(TEST_SRC) Makefile
	@mkdir -p $(@D)
	{ for f in $(patsubst tests/test_%.c,%,$(TEST_SRC)); do echo "SUITE($$f)"; done; } > $@.tmp
	cmp -s $@.tmp $@ 2>/dev/null && rm -f $@.tmp || mv $@.tmp $@

$(call obj,tests/main.c $(TEST_SRC) $(TESTLIB_SRC)): $(BUILD)/tests/suites.h

$(TEST_BIN): $(BUILD)/obj/tests/main.o $(call obj,$(TEST_SRC) $(TESTLIB_SRC)) $(ORCH_OBJ) $(COMMON_OBJ) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CHECK_LIBS) -lm

$(BUILD)/tests/helpers/%: $(BUILD)/obj/tests/helpers/%.o $(PROTO_LIB) $(BUILD)/obj/common/util.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(JSON_LIBS)

# The state engine's helper links the engine itself; the ENOSPC shim is an
# LD_PRELOAD library built without sanitizers.
$(BUILD)/tests/helpers/statewriter: $(BUILD)/obj/tests/helpers/statewriter.o \
  $(call obj,orchestrator/interfaces/engine.c orchestrator/interfaces/local.c \
    orchestrator/interfaces/record.c orchestrator/interfaces/etcd.c common/etcd_client.c \
    orchestrator/interfaces/pulumi.c common/crypto.c common/cache.c common/hash.c \
    common/http.c common/util.c) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/shim/enospc.so: tests/shim/enospc.c
	@mkdir -p $(@D)
	$(CC) -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

# The fault sweep's shim (tests/test_faults.c): the Nth write, fsync, rename,
# writing open or mkdir of orchd's process fails; also built without
# sanitizers.
$(BUILD)/tests/shim/fault.so: tests/shim/fault.c
	@mkdir -p $(@D)
	$(CC) -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

# The kill -9 tests' shim: syncs return at once (a killed process leaves
# the same files behind either way, see tests/shim/nosync.c).
$(BUILD)/tests/shim/nosync.so: tests/shim/nosync.c
	@mkdir -p $(@D)
	$(CC) -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -o $@ $<

SHIMS := $(BUILD)/tests/shim/enospc.so $(BUILD)/tests/shim/fault.so $(BUILD)/tests/shim/nosync.so

# The tests drive the real tools (OpenTofu, ansible, sops, age, Pulumi):
# `make tools` builds them once into ~/.cache/orchd/tools and check puts them
# first on PATH.  NO_TOOLS=1 skips the installer (the tool tests then fail
# loudly when a tool is missing).  Check's own CK_INCLUDE_TAGS and
# CK_EXCLUDE_TAGS pick test cases by tag (the ones that need a tool are tagged
# "tools"); the SDK tests, which have no tag, run when CK_INCLUDE_TAGS is
# unset, and never under SANITIZE.
TOOLS_PATH = $(shell bash tests/tools/install-tools.sh --print-path 2>/dev/null)

check: all $(TEST_BIN) $(TEST_HELPERS) $(SHIMS) $(if $(NO_TOOLS),,tools)
	PATH="$(TOOLS_PATH):$$PATH" ORCHD_BUILD=$(abspath $(BUILD)) ORCHD_SRC=$(CURDIR) \
	  $(TEST_BIN)
	$(if $(SANITIZE)$(CK_INCLUDE_TAGS),,sh tests/sdk/run.sh $(BUILD))

# The tests of the extension SDKs (protocol/sdk/: pytest, go test, sh),
# which `make check` runs too (not again under SANITIZE: they test the
# SDKs, not orchd).
check-sdk: all
	sh tests/sdk/run.sh $(BUILD)

# The edit-compile-test loop: every test that needs no tool of `make tools`
# (the test cases tagged "tools" are left out), and every 20th point of the
# fault sweep (check runs them all).
check-fast: all $(TEST_BIN) $(TEST_HELPERS) $(SHIMS)
	CK_EXCLUDE_TAGS=tools ORCHD_FAULT_STRIDE=20 ORCHD_BUILD=$(abspath $(BUILD)) \
	  ORCHD_SRC=$(CURDIR) $(TEST_BIN)

# --- install -----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/orchd/extensions \
	  $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)/orchd $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(ORCHD) $(DESTDIR)$(BINDIR)/orchd
	install -d $(DESTDIR)$(LIBEXECDIR)/orchd/probe
	install -m 755 $(PROBE) $(DESTDIR)$(LIBEXECDIR)/orchd/probe/
	install -m 755 $(REAPER) $(DESTDIR)$(LIBEXECDIR)/orchd/
	for e in $(EXT_NAMES); do \
	  install -m 755 $(EXT_DIR)/orchd-ext-$$e $(DESTDIR)$(LIBEXECDIR)/orchd/extensions/ && \
	  install -m 644 extensions/$$e/manifest.json \
	    $(DESTDIR)$(LIBEXECDIR)/orchd/extensions/orchd-ext-$$e.manifest.json || exit 1; \
	done
	install -m 644 $(PROTO_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(PROTO_HDR) $(DESTDIR)$(INCDIR)/orchd/
	install -m 644 $(PROTO_PC) $(DESTDIR)$(PKGCONFIGDIR)/
	if [ -f orchestrator/orchd.1 ]; then install -d $(DESTDIR)$(MANDIR)/man1 && \
	  install -m 644 orchestrator/orchd.1 $(DESTDIR)$(MANDIR)/man1/; fi
	# the SDKs orchd ext new copies into a new extension
	install -d $(DESTDIR)$(SDKDIR)/python/orchd_sdk $(DESTDIR)$(SDKDIR)/go/orchd
	install -m 644 protocol/sdk/python/orchd_sdk/*.py protocol/sdk/python/orchd_sdk/py.typed \
	  $(DESTDIR)$(SDKDIR)/python/orchd_sdk/
	install -m 644 protocol/sdk/go/go.mod $(DESTDIR)$(SDKDIR)/go/
	install -m 644 $(filter-out %_test.go,$(wildcard protocol/sdk/go/orchd/*.go)) \
	  $(DESTDIR)$(SDKDIR)/go/orchd/
	if [ -f protocol/sdk/sh/orchd.sh ]; then install -d $(DESTDIR)$(SDKDIR)/sh && \
	  install -m 644 protocol/sdk/sh/orchd.sh $(DESTDIR)$(SDKDIR)/sh/; fi

# --- dependencies, tools, lint, bench ----------------------------------------
DEB_DEPS := build-essential pkg-config libyaml-dev libjson-c-dev libgit2-dev libseccomp-dev \
	libcurl4-openssl-dev libssl-dev check clang-format cppcheck valgrind git python3 python3-venv jq \
	openssl time iproute2 procps clang libclang-rt-14-dev libxml2-utils chromium \
	openjdk-17-jre-headless curl

deps:
	@missing=$$(for p in $(DEB_DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done); \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "deps: all present"; fi

tools:
	bash tests/tools/install-tools.sh

LINT_SRC = $(COMMON_SRC) $(PROTO_SRC) $(ORCH_SRC) $(MAIN_SRC) orchestrator/probe.c orchestrator/reaper.c \
	$(wildcard extensions/*/*.c) $(TEST_SRC) $(TESTLIB_SRC) $(TEST_HELPER_SRC) $(wildcard tests/fuzz/*.[ch]) \
	$(wildcard common/*.h protocol/*.h orchestrator/*/*.h extensions/*/*.h)

lint: $(PROTO_HDR)
	@echo "lint: clang-format"
	@clang-format --dry-run --Werror $(LINT_SRC)
	@echo "lint: cppcheck"
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	  --inline-suppr --std=c11 -D_GNU_SOURCE -Icommon -Iprotocol -Iorchestrator \
	  -I$(BUILD)/include \
	  --suppress=missingIncludeSystem $(filter %.c,$(LINT_SRC))

bench: all
	bash bench/run.sh $(BUILD)

# valgrind (memcheck + leaked fds) on the main paths of orchd and an extension.
valgrind: all
	sh tests/valgrind.sh $(BUILD)

# --- fuzzing (tests/fuzz/README.md) ----------------------------------------
# Each tests/fuzz/fuzz_NAME.c is a libFuzzer target, built with clang under
# ASan + UBSan into $(BUILD)/fuzz/fuzz_NAME, against the orchd sources
# compiled again for it (with the same warnings and -Werror; the main build
# keeps its own compiler and flags).  `make fuzz` builds the seed corpora
# from the tree and runs each target for FUZZ_TIME seconds, or FUZZ_RUNS
# executions when set; it fails on any crash, leak, timeout or sanitizer
# report (the input is left in $(BUILD)/fuzz/findings/).
FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
FUZZ_RUNS ?=
FUZZ_DIR  := $(BUILD)/fuzz
FUZZ_NAMES := $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS := $(addprefix $(FUZZ_DIR)/,$(FUZZ_NAMES))
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c17 -O1 -g $(WARN) -fno-strict-aliasing -pthread -MMD -MP $(FUZZ_SAN) \
	-fsanitize=fuzzer-no-link
FUZZ_LIB  := $(FUZZ_DIR)/liborchd-fuzz.a

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(PKG_CFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(COMMON_SRC) $(PROTO_SRC) $(ORCH_SRC))
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PKG_LIBS) -lm

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	sh tests/fuzz/run.sh $(FUZZ_DIR) "$(FUZZ_TIME)" "$(FUZZ_RUNS)" $(FUZZ_NAMES)

clean:
	rm -rf build

.PHONY: all check check-fast install deps tools lint bench valgrind clean fuzz fuzz-build

-include $(shell find $(BUILD)/obj $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
