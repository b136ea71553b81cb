#!/usr/bin/env bash
# Install the peer libraries (Meta's flow_matching, TorchCFM) in their own virtual environment,
# beside (not inside) noise2data's, for benchmarks/peers.py.
#
# Everything is installed with --no-deps on top of an explicit list, so pip never resolves a
# different torch than the CPU build the developers' guide pins:
#   - flow-matching 1.0.10 imports tqdm without declaring it;
#   - torchcfm declares torchdyn (installed as asked, --no-deps), but its training API does not import it;
#     torchdyn itself needs pytorch-lightning, so sampling uses torchdiffeq, as torchcfm's image examples do.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PEERS_VENV:-benchmarks/.peers-venv}
PY=${PY:-python3}
TORCH=${TORCH:-torch==2.13.0}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install --quiet "$TORCH"
"$VENV/bin/python" -m pip install --quiet numpy scipy tqdm POT torchdiffeq safetensors scikit-learn matplotlib
"$VENV/bin/python" -m pip install --quiet --no-deps flow-matching==1.0.10 torchcfm torchdyn
# noise2data itself, so the peers script can use the same data, metrics and reference sampler.
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" - <<'PY'
import flow_matching, torchcfm, torch
print("peers ready: flow_matching", getattr(flow_matching, "__version__", "?"),
      "| torchcfm", getattr(torchcfm, "__version__", "?"), "| torch", torch.__version__)
PY
