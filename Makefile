# The README's commands. Each target installs what it needs on a fresh machine with Python:
# uv itself (from PyPI, when absent), then the locked environment in .venv, byte-compiled
# (the SDKs are large: compiled once, every plan starts about a second faster).
STACK ?= dev
PYTHON ?= python3
UV = $(shell command -v uv 2>/dev/null || echo $(PYTHON) -m uv)
VENV_PY = .venv/bin/python

.PHONY: setup checkov-env vllm-env openwebui-env loadtest-env onnx-env system-tools plan plan-all test lint clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| { echo "installing uv"; $(PYTHON) -m pip install --quiet uv; }
	$(UV) sync --frozen --compile-bytecode
	@touch $@

## plan: the offline plan of one stack (STACK=dev by default) into out/$(STACK)/
plan: setup
	$(VENV_PY) -m tools.plan $(STACK)

plan-all: setup
	@for stack in $$(ls stacks | sed -n 's/^Pulumi\.\(.*\)\.yaml$$/\1/p'); do \
		$(VENV_PY) -m tools.plan $$stack || exit $$?; done

# checkov pins dependencies that clash with Pulumi's: it gets an environment of its own,
# locked in tools/checkov/requirements.txt (uv pip compile --generate-hashes).
checkov-env: .venv-checkov/.synced

.venv-checkov/.synced: tools/checkov/requirements.txt | setup
	$(UV) venv -q --allow-existing --python $(VENV_PY) .venv-checkov
	$(UV) pip sync -q --python .venv-checkov/bin/python tools/checkov/requirements.txt
	@touch $@

# vLLM's own argument parser and config validation, run on CPU over every rendered vLLM
# command line (tests/test_vllm_contract.py): vLLM at the pinned image's version and
# PyTorch's CPU build, locked in tools/vllm_check/requirements.txt (uv pip compile
# --generate-hashes, its header says how). The CPU torch lies in /opt/wheels on this
# project's machines; PyPI's is the CUDA build, several GB.
TORCH_WHEELS ?= /opt/wheels
vllm-env: .venv-vllm/.synced

.venv-vllm/.synced: tools/vllm_check/requirements.txt | setup
	$(UV) venv -q --allow-existing --python $(VENV_PY) .venv-vllm
	$(UV) pip sync -q --python .venv-vllm/bin/python --find-links $(TORCH_WHEELS) \
		tools/vllm_check/requirements.txt
	@touch $@

# The real Open WebUI at the pinned image's version, started by tests/test_open_webui.py with
# the rendered environment; locked in tools/openwebui/requirements.txt (its README says how).
openwebui-env: .venv-openwebui/.synced

.venv-openwebui/.synced: tools/openwebui/requirements.txt | setup
	$(UV) venv -q --allow-existing --python $(VENV_PY) .venv-openwebui
	$(UV) pip sync -q --python .venv-openwebui/bin/python tools/openwebui/requirements.txt
	@touch $@

# guidellm, the load generator tools/loadtest.py drives (tests/test_loadtest.py runs it against
# a loopback fake OpenAI server): guidellm 0.8.1 and the PyTorch CPU build it requires, locked
# in tools/loadtest/requirements.txt (its requirements.in says how).
loadtest-env: .venv-loadtest/.synced

.venv-loadtest/.synced: tools/loadtest/requirements.txt | setup
	$(UV) venv -q --allow-existing --python $(VENV_PY) .venv-loadtest
	$(UV) pip sync -q --python .venv-loadtest/bin/python --find-links $(TORCH_WHEELS) \
		tools/loadtest/requirements.txt
	@touch $@

# The ONNX Runtime GenAI server (images/onnxruntime-genai-server), run for real by
# tests/test_onnx_server.py: the image's locked requirements plus what onnxruntime-genai's
# model builder imports to build the tests' tiny model (PyTorch's CPU build from
# $(TORCH_WHEELS), transformers, onnx), locked in tests/onnx_server/requirements.txt.
onnx-env: .venv-onnx/.synced

.venv-onnx/.synced: tests/onnx_server/requirements.txt | setup
	$(UV) venv -q --allow-existing --python $(VENV_PY) .venv-onnx
	$(UV) pip sync -q --python .venv-onnx/bin/python --find-links $(TORCH_WHEELS) \
		tests/onnx_server/requirements.txt
	@touch $@

# promtool (alert rules) and nginx (the edge attacker tests), from Debian's packages when
# the machine lacks them and allows it: the suite fails, never skips, without them.
system-tools:
	@bash tools/install_system_tools.sh

## test: the whole suite (unit tests, every stack's plan, manifest validation, checkov,
## vLLM's own parser over every vLLM command line, the real Open WebUI, guidellm against a
## fake server, the ONNX Runtime GenAI server on a tiny model, promtool, nginx)
test: setup checkov-env vllm-env openwebui-env loadtest-env onnx-env system-tools
	$(VENV_PY) -m pytest -n auto

lint: setup
	$(VENV_PY) -m ruff check .
	$(VENV_PY) -m ruff format --check .

clean:
	rm -rf out .pytest_cache .ruff_cache .venv-checkov .venv-vllm .venv-openwebui .venv-loadtest .venv-onnx
