# Set-up on a fresh machine: a virtual environment, the CPU build of torch first (so pip never
# resolves a multi-GB CUDA build), then the package with its extras.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench peers clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/noise2data train --data moons --steps 3000 --out runs/demo
	$(BIN)/noise2data sample runs/demo --n 4000 --nfe 8 --out runs/demo/samples.npy --plot runs/demo/samples.png --trajectory-plot runs/demo/trajectories.png
	$(BIN)/noise2data sample runs/demo --n 4000 --sde --diffusion 0.5 --steps 100 --out runs/demo/samples_sde.npy --plot runs/demo/samples_sde.png
	$(BIN)/noise2data plot-path --data moons --out runs/demo/path.png
	$(BIN)/noise2data eval runs/demo --n 2000 --nfe 8 --metrics w2,energy_u,mmd,precision,recall,nll
	$(BIN)/noise2data report runs/demo
	@echo "demo: plots in runs/demo/*.png, metrics in runs/demo/eval.json, everything in runs/demo/report.html"

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/toy2d.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/likelihood.py
	$(BIN)/python benchmarks/fid.py $(if $(wildcard ../shared/data/mnist),--mnist ../shared/data/mnist)
	$(BIN)/python benchmarks/mnist.py --speed
	$(if $(wildcard ../shared/data/mnist),$(BIN)/python benchmarks/mnist.py --mnist ../shared/data/mnist)
	$(if $(wildcard ../shared/data/qm9),$(BIN)/python benchmarks/qm9.py --smiles ../shared/data/qm9/qm9_smiles.txt)

# noise2data beside Meta's flow_matching and TorchCFM, installed in their own venv
peers: $(STAMP)
	bash benchmarks/setup_peers.sh
	benchmarks/.peers-venv/bin/python benchmarks/peers.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
