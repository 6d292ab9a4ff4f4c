# Meridian — build and test entry points. `make test` is what CI runs.
GO ?= go
BIN := bin/meridian
# test/node-webhooks is driven by go test (control/webhooks TestNodeVerification
# writes the signed fixtures it verifies), so only its dependencies are installed here.
NODE_DEPS := test/node-compat test/node-webhooks
NODE_TESTS := test/node-compat

.PHONY: build test test-go test-node node-deps tools lint bench dev clean fuzz

build:
	$(GO) build -o $(BIN) ./cmd/meridian

tools:
	$(GO) build -o bin/meridian-participants ./test/tools/participants

dev: build
	./$(BIN) dev

# The whole suite: Go tests with the race detector (in-process Raft clusters,
# pion clients, webhook receivers, headless Chromium when installed, Node
# signature checks), then the Node clients (official VideoSDK server SDK,
# jsonwebtoken) against the freshly built binary.
test: build tools node-deps test-go test-node

node-deps:
	@for d in $(NODE_DEPS); do \
		(cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	done

# The Chromium tests run after the rest, alone: two browsers beside another
# media package (two packages run at once) starved the e2e recording tests,
# whose composite must show a far participant within 2 s (seen failing that
# way with and without the change under test, 2026-12-06). The e2e tests
# run alone too: beside the chaos and CLI suites one of them found the far
# participant's picture still for the composite's last 2 s (2026-12-06,
# f8e0cde; it passed 3 of 3 alone, and in CI at 7ab1236 and 26282a4).
test-go:
	$(GO) test -race -count=1 -timeout 25m $$($(GO) list ./... | grep -v -e '/test/browser$$' -e '/test/e2e$$')
	$(GO) test -race -count=1 -timeout 25m ./test/e2e/
	$(GO) test -race -count=1 -timeout 25m ./test/browser/
	cd third_party/go-immutable-radix && $(GO) test -race -count=1 ./...

test-node: build tools
	@for d in $(NODE_TESTS); do \
		echo "== node tests in $$d"; \
		(cd $$d && MERIDIAN_BIN=$(CURDIR)/$(BIN) MERIDIAN_PARTICIPANTS_BIN=$(CURDIR)/bin/meridian-participants npm test) || exit 1; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) mod tidy -diff

# Every fuzz target, FUZZTIME each (the seeds also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$(go list ./... ); do \
		for t in $$(go test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run XXX -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

bench:
	$(GO) test -run XXX -bench . -benchmem ./edge/... ./control/...

clean:
	rm -rf bin

# The chaos suite, long form: three `meridian control` processes killed,
# paused and partitioned for ten minutes under concurrent clients (history
# checked with porcupine), 10,000 webhooks with the leader killed every
# 30 s, edges with live meetings killed. `make test` runs the short form
# (about a minute). See docs/chaos.md.
.PHONY: chaos
chaos:
	MERIDIAN_CHAOS_LONG=1 $(GO) test -race -count=1 -timeout 60m -v ./test/chaos/
