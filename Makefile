# Meridian — build and test entry points. `make test` is what CI runs.
GO ?= go
BIN := bin/meridian
NODE_TESTS := test/node-compat test/node-webhooks

.PHONY: build test test-go test-node lint bench dev clean

build:
	$(GO) build -o $(BIN) ./cmd/meridian

dev: build
	./$(BIN) dev

# The whole suite: Go tests with the race detector, then the Node clients
# (official VideoSDK server SDK, jsonwebtoken, standardwebhooks) against a live binary.
test: build test-go test-node

test-go:
	$(GO) test -race -count=1 -timeout 25m ./...

test-node: build
	@for d in $(NODE_TESTS); do \
		if [ -f $$d/package.json ]; then \
			echo "== node tests in $$d"; \
			(cd $$d && npm ci --no-audit --no-fund --loglevel=error && MERIDIAN_BIN=$(CURDIR)/$(BIN) npm test) || exit 1; \
		fi; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

bench:
	$(GO) test -run XXX -bench . -benchmem ./edge/... ./control/...

clean:
	rm -rf bin
