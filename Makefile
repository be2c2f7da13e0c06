# steward — thin wrapper over CMake. `make run` and `make test` are the two commands.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG     ?= examples/demo/steward.jsonc
ARGS       ?=
CTEST_ARGS ?=

# Debian 12 packages: what building needs, and what the test suites start or use.
BUILD_PACKAGES := build-essential cmake pkg-config liblua5.4-dev libuv1-dev libcjson-dev \
                  libcurl4-openssl-dev libsqlite3-dev libhttp-parser-dev libjemalloc-dev
TEST_PACKAGES  := openssl sqlite3 procps clang libclang-rt-14-dev curl jq python3 prometheus \
                  pdns-server pdns-backend-sqlite3 knot dnsutils etcd-server

.PHONY: all deps deps-test build asan run test bench check-config clean

all: build

# Installs only what is missing (as root directly, otherwise through sudo).
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PACKAGES))

deps-test: deps
	$(call apt_install,$(TEST_PACKAGES))

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSW_SANITIZE=ON -DSW_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

run: build
	./$(BUILD)/steward run -c $(CONFIG) $(ARGS)

# Every suite on the normal build, then the C suites again under ASan + UBSan.
test: deps-test build asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS) -L 'unit|faults' $(CTEST_ARGS)

# C benchmarks, then the scripted ones (marketplace, admin API); a script exits 77 when a
# tool it needs (wrk, jq) is missing, which is reported and skipped.
bench: build
	@cmake --build $(BUILD) --target bench_all -j$(JOBS)
	@for b in $(BUILD)/bench/bench_*; do echo "== $$b"; $$b || exit 1; done
	@for s in bench/*.sh; do echo "== $$s"; bash $$s $(BUILD); rc=$$?; \
	  if [ $$rc = 77 ]; then echo "   skipped: a tool is missing"; elif [ $$rc != 0 ]; then exit $$rc; fi; done

check-config: build
	./$(BUILD)/steward check -c $(CONFIG)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
