# Developer entry points. Each target is a one-liner; scripts hold the logic.
# uv installed by scripts/setup.sh on a fresh machine lands in ~/.local/bin.
export PATH := $(HOME)/.local/bin:$(PATH)
.PHONY: demo test fuzz setup lint fmt protos protos-check infra-install up down

demo: ## The main job: set up, start the single-node edition, run sample exams end to end
	scripts/setup.sh && uv run sonobridge demo

test: ## The whole test suite from nothing (installs uv, packages, Kafka, MinIO, PostgreSQL)
	scripts/test.sh

fuzz: ## The long form of the hostile-input suite: 20x the CI cases, a fresh seed
	SONOBRIDGE_FUZZ_SCALE=$${SONOBRIDGE_FUZZ_SCALE:-20} SONOBRIDGE_FUZZ_SEED=$${SONOBRIDGE_FUZZ_SEED:-$$(date +%s)} uv run pytest tests/security -q --timeout=3600

setup: ## Install uv, the locked Python environment and the local servers
	scripts/setup.sh --infra

lint: ## Lint, check import boundaries, and mypy --strict on common and each domain and handlers
	scripts/lint.sh

fmt: ## Format and auto-fix
	uv run ruff format . && uv run ruff check --fix .


protos: ## Regenerate Python code and stubs from proto/ with the pinned protoc
	uv run python scripts/gen_protos.py

protos-check: ## Fail if the generated code under proto/ is stale
	uv run python scripts/gen_protos.py --check

infra-install: ## Install pinned Kafka, MinIO, PostgreSQL, Toxiproxy, SeaweedFS into ~/.cache/sonobridge
	deploy/local/install.sh all

up: infra-install ## Start local Kafka, MinIO and PostgreSQL on 127.0.0.1
	deploy/local/up.sh all

down: ## Stop the local servers (data in var/local is kept)
	deploy/local/down.sh all

.PHONY: k8s-validate
k8s-validate: ## Render and strictly validate deploy/k8s, promtool-check and unit-test the alerts
	scripts/k8s_tools.sh && uv run pytest tests/deploy_k8s -q -m "not e2e and not infra"

.PHONY: cluster-up cluster-down
cluster-up: ## Start the cluster edition: each service its own process on local Kafka, MinIO, PostgreSQL
	scripts/cluster.sh up

cluster-down: ## Stop the cluster edition's processes (the local servers keep running)
	scripts/cluster.sh down

.PHONY: weak-link
weak-link: ## Issue 20's long weak-link form: 50 MB by tus over a 5 Mbit/s link cut every 30 s
	SONOBRIDGE_WEAK_LINK_MB=50 uv run pytest tests/chaos/test_weak_link.py -q -s --timeout=3600

.PHONY: chaos
chaos: ## Issue 20's long chaos form: 500 exams, kills, each server restarted twice, pauses; audited
	uv run python tests/chaos/chaos_run.py --long --exams $${SONOBRIDGE_CHAOS_EXAMS:-500} --rate $${SONOBRIDGE_CHAOS_RATE:-0.3} --gap 8 --cap 120 --saturate $${SONOBRIDGE_CHAOS_SATURATE:-40} --drain 400
