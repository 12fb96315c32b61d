# Developer entry points. Each target is a one-liner; scripts hold the logic.
.PHONY: protos protos-check infra-install up down

protos: ## Regenerate Python code and stubs from proto/ with the pinned protoc
	uv run python scripts/gen_protos.py

protos-check: ## Fail if the generated code under proto/ is stale
	uv run python scripts/gen_protos.py --check

infra-install: ## Install pinned Kafka, MinIO and PostgreSQL into ~/.cache/sonobridge
	deploy/local/install.sh all

up: infra-install ## Start local Kafka, MinIO and PostgreSQL on 127.0.0.1
	deploy/local/up.sh all

down: ## Stop the local servers (data in var/local is kept)
	deploy/local/down.sh all

.PHONY: k8s-validate
k8s-validate: ## Render and strictly validate deploy/k8s, promtool-check and unit-test the alerts
	scripts/k8s_tools.sh && uv run pytest tests/deploy_k8s -q -m "not e2e and not infra"
