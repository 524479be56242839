# Thin entry points; the work lives in infra/ and in Rust.
.PHONY: install build dev test template-check contracts bench client deploy

install: ## Install every tool the stack and tests need into .tools/ (idempotent)
	./infra/install.sh

build: install
	cargo build --workspace --bins

dev: build ## Run the whole system locally (DynamoDB Local, anvil devnets, functions, server, pump, poller)
	./target/debug/local-stack

test: build ## Unit tests, end-to-end tests on the real local stack, template checks
	./infra/test.sh

template-check: install
	./infra/template-check.sh

contracts: install ## Recompile the devnet contracts (infra/contracts/*.sol) with solc-js
	SOLC_MODULE=$(CURDIR)/.tools/npm/node_modules/solc node infra/contracts/compile.js

bench: build ## Benchmarks on the real local stack (README "Benchmarks"): target/bench/results.json
	cargo run -q -p e2e --bin bench

client: install ## After an API change: OpenAPI document validated, TypeScript client types, build and demo bundle regenerated
	./infra/client.sh

deploy: install ## Build and push the images, then build and deploy the stack with samconfig.toml (see infra/deploy/)
	./infra/deploy/deploy.sh
