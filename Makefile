# Switchboard. `make run` starts a server on the embedded engine with sandbox
# Twilio and a development master key; `make test` runs every test.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/switchboard

.PHONY: run build test bench lint lint-openapi fmt vet dupl fuzz clean

run: build
	@echo "serving on http://127.0.0.1:8080 (data in ./data; stop with Ctrl-C; start over: rm -rf ./data)"
	./$(BIN) serve

# The same build flags as the tests, so `make run` and `make test` share the
# build cache; the Dockerfile makes the static, trimmed release binary.
build:
	@echo "building $(BIN) (the first build compiles the embedded database engine: about two minutes)..."
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/switchboard
	@echo "built $(BIN)"

test:
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race ./crypto/

# Benchmarks print ratios against baselines measured in the same run.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./crypto/
	$(GO) test -run '^$$' -bench IDAccess -benchtime 200x ./store/
	$(GO) test -run '^$$' -bench RegisterActivate -benchtime 200x ./api/
	$(GO) test -run '^$$' -bench 'ContactInfoAtScale|EventsAtScale' -benchtime 50x ./api/
	$(GO) test -run '^$$' -bench 'Export10000$$' -benchtime 3x ./api/
	$(GO) test -run '^$$' -bench 'Shred$$' -benchtime 5x ./tenants/
	$(GO) test -run '^$$' -bench 'ShredCertificate$$' -benchtime 20x ./tenants/
	$(GO) test -run '^$$' -bench 'Upsert1000$$' -benchtime 5x ./contacts/
	$(GO) test -run '^$$' -bench UpsertIntoLargeCustomer -benchtime 10x -timeout 30m ./contacts/
	$(GO) test -run '^$$' -bench LookupByEmail -benchtime 500x ./contacts/
	$(GO) test -run '^$$' -bench Verify ./tokens/
	$(GO) test -run '^$$' -bench 'SendMessage|Inbound' -benchtime 400x ./api/
	$(GO) test -run '^$$' -bench 'Sender|StatusStorm' -benchtime 1x ./api/
	$(GO) test -run '^$$' -bench IDRange -benchtime 200x ./store/
	$(GO) test -run '^$$' -bench EightCustomers -benchtime 1x ./store/
	$(GO) test -run '^$$' -bench 'Scan$$' -benchtime 10x -timeout 60m ./api/
	$(GO) test -run '^$$' -bench ListAtScale -benchtime 10x -timeout 40m ./messages/
	$(GO) test -run '^$$' -bench ShredAmongOthers -benchtime 3x -timeout 30m ./tenants/
	$(GO) test -run '^$$' -bench ServeMemory -benchtime 1x -timeout 30m ./api/
	$(GO) test -run '^$$' -bench 'Events10000$$|ReceiverDownThenUp' -benchtime 1x -timeout 60m ./webhooks/
	$(GO) test -run '^$$' -bench InboundWithSubscription -benchtime 400x ./webhooks/

lint: vet dupl
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff

# No block of real logic (50 tokens, about 6 lines) stands twice in the
# non-test code but for the pairs the README's development section lists
# with why (at most 8). dupl is pinned here and comes from the module proxy.
DUPL_MAX := 5
dupl:
	@out=$$($(GO) run github.com/mibk/dupl@v1.0.0 -t 50 $$(git ls-files '*.go' | grep -v '_test\.go$$' | grep -v '^third_party/')); \
	n=$$(echo "$$out" | sed -n 's/^Found total \([0-9]*\) clone groups.*/\1/p'); \
	if [ "$${n:-0}" -gt $(DUPL_MAX) ]; then echo "$$out"; echo "dupl: $$n clone groups, the README lists $(DUPL_MAX)"; exit 1; fi; \
	echo "dupl: $${n:-0} clone groups (the README lists them)"

# Stoplight Spectral (pinned in tools/spectral, from npm) with its
# spectral:oas ruleset: no error and no warning in the OpenAPI document.
lint-openapi:
	npm ci --prefix tools/spectral --no-audit --no-fund --loglevel=error
	tools/spectral/node_modules/.bin/spectral lint --fail-severity=warn --ruleset tools/spectral/.spectral.yaml api/openapi.yaml

# The production variant (no embedded engine, see the Dockerfile) is vetted too.
vet:
	$(GO) vet ./...
	$(GO) vet -tags noembedded ./cmd/... ./store/...

fmt:
	gofmt -w .

# A short run of every fuzz target (go test runs one target at a time).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime 20s ./crypto/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime 20s ./api/
	$(GO) test -run '^$$' -fuzz '^FuzzValidSignature$$' -fuzztime 20s ./twilio/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime 20s ./tokens/
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime 20s ./contacts/

clean:
	rm -rf bin
