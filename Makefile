# multisite: one command each for a new user: `make demo`, `make test`.
SHELL := /bin/bash
DEB_PACKAGES := pdns-server pdns-backend-remote pdns-backend-bind pdns-tools haproxy dnsutils dnsperf chromium dnsdist \
  postgresql-server-dev-15
PG_CONFIG := /usr/lib/postgresql/15/bin/pg_config
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps apt npm native build lint test test-unit test-integration fuzz demo bench clean install uninstall

deps: apt npm

# Installs the missing packages only (scripts/apt-deps.sh: idempotent, waits for another apt).
apt:
	@bash scripts/apt-deps.sh $(DEB_PACKAGES)

# npm ci only when package-lock.json changed since the last install.
npm: node_modules/.installed
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: npm
	npx tsc -p tsconfig.json

# The native capture trigger (native/multisite_capture.c), built with PostgreSQL 15's PGXS and
# installed into the server's library directory (as root: the directory is the server's), only
# when the built library differs. `multisite migrate` (capture: auto) uses it once it is there.
native: apt
	$(MAKE) --no-print-directory -C native PG_CONFIG=$(PG_CONFIG)
	@cmp -s native/multisite_capture.so "$$($(PG_CONFIG) --pkglibdir)/multisite_capture.so" || \
	  $(SUDO) $(MAKE) --no-print-directory -C native PG_CONFIG=$(PG_CONFIG) install

# ESLint (typescript-eslint; line and function length), Prettier's check, and the import
# boundaries between parts (dependency-cruiser, fed from boundaries.json). `npx prettier --write .`
# fixes the formatting.
lint: npm
	npx eslint --max-warnings 0 .
	npx prettier --check .
	npx depcruise src --config .dependency-cruiser.cjs --output-type err

test: deps build native
	npx tsc -p tsconfig.test.json
	$(MAKE) --no-print-directory lint
	npx vitest run

test-unit: npm
	npx vitest run test/unit

test-integration: deps build native
	npx vitest run test/integration

# The wire-protocol fuzz suites with random seeds and many more cases (make test runs them from a
# fixed seed, quickly). A failure prints its seed: replay it with FC_SEED=N FUZZ_RUNS=N make fuzz.
FUZZ_RUNS ?= 20000
fuzz: deps build
	FC_SEED=$${FC_SEED:-random} FUZZ_RUNS=$(FUZZ_RUNS) npx vitest run test/fuzz

demo: deps build
	node dist/cli/main.js demo

# Every bench/*.ts prints a table and writes bench/results/<name>.json; `make bench-NAME` runs one.
bench: deps build native
	@for f in bench/*.ts; do echo "== $$f"; npx tsx $$f || exit 1; done

bench-%: deps build native
	npx tsx bench/$*.ts

# `make install [PREFIX=/usr/local] [DESTDIR=staging]`: the packed package (what `npm pack` ships)
# installed globally under PREFIX, so PREFIX/bin/multisite is on PATH, plus the systemd unit
# (multisite@.service, ExecStart pointing at PREFIX/bin) and its sysusers.d entry. koffi's install
# script is skipped: its npm package already carries the prebuilt binaries (it only checks them).
# On a live systemd host (as root, no DESTDIR) it also creates the user and reloads systemd.
PREFIX ?= /usr/local
BINDIR := $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
install: build
	@rm -rf .tmp/pack && mkdir -p .tmp/pack
	npm pack --silent --pack-destination .tmp/pack >/dev/null
	npm install -g --prefix "$(DESTDIR)$(PREFIX)" --prefer-offline --ignore-scripts --no-audit --no-fund .tmp/pack/multisite-*.tgz
	install -d "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(SYSUSERSDIR)"
	sed 's#@BINDIR@#$(BINDIR)#g' deploy/systemd/multisite@.service.in > "$(DESTDIR)$(UNITDIR)/multisite@.service"
	install -m 644 deploy/systemd/multisite.sysusers "$(DESTDIR)$(SYSUSERSDIR)/multisite.conf"
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && [ -d /run/systemd/system ]; then \
	  systemd-sysusers "$(SYSUSERSDIR)/multisite.conf" && systemctl daemon-reload; fi
	@echo "installed: $(DESTDIR)$(BINDIR)/multisite, $(DESTDIR)$(UNITDIR)/multisite@.service (docs/install.md)"

uninstall:
	rm -rf "$(DESTDIR)$(PREFIX)/lib/node_modules/multisite" "$(DESTDIR)$(BINDIR)/multisite"
	rm -f "$(DESTDIR)$(UNITDIR)/multisite@.service" "$(DESTDIR)$(SYSUSERSDIR)/multisite.conf"

clean:
	rm -rf dist bench/results .tmp/pack
	rm -f native/*.o native/*.so native/*.bc
