# memunlearn: `make run` sets up and runs the default pipeline; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin

# No telemetry from any of the tools, ever.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export PATH := $(BIN):$(PATH)

.PHONY: setup check run full text cifar10 report test flow serve deploy grids grids-large ui list top

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed   ## create .venv and install memunlearn with its dev tools

check: setup                ## validate every params.yaml section (all problems at once) before DVC deletes outputs
	memunlearn check

run: check                  ## reproduce the DVC pipeline on the default (embedded MNIST) data; then its headline and claims
	dvc repro
	memunlearn report

full: setup                 ## the default run at full size (all 4,000 digits, params/full.yaml) as DVC experiment 'full-…'
	memunlearn check --preset params/full.yaml
	eval dvc exp run --name full-$$(date +%Y%m%d-%H%M%S) $$(memunlearn overrides params/full.yaml)
	memunlearn report

text: setup                 ## first-epoch gradient ascent on a small GPT-2 (params/text.yaml), as DVC experiment 'text-…'
	memunlearn check --preset params/text.yaml
	eval dvc exp run --name text-$$(date +%Y%m%d-%H%M%S) $$(memunlearn overrides params/text.yaml)
	memunlearn report

cifar10: setup              ## the papers' setting (params/cifar10.yaml: CIFAR-10, ResNet-18, K = 400) as DVC experiment 'cifar10-…'; a GPU's hours (docs/cifar10.md)
	memunlearn check --preset params/cifar10.yaml
	eval dvc exp run --name cifar10-$$(date +%Y%m%d-%H%M%S) $$(memunlearn overrides params/cifar10.yaml)
	memunlearn report

test: setup                 ## unit tests + one end-to-end pipeline test (real DVC, MLflow, Prefect)
	python -m pytest

flow: check                 ## the same pipeline through the Prefect flow
	python -m flows.pipeline

serve: setup                ## serve the Prefect deployment 'memunlearn-pipeline/default' (stop with Ctrl-C)
	python -m flows.pipeline --serve

deploy: setup               ## both flows on the process work pool 'memunlearn' (prefect.yaml); then: prefect worker start --pool memunlearn
	prefect work-pool inspect memunlearn >/dev/null 2>&1 || prefect work-pool create memunlearn --type process
	prefect --no-prompt deploy --all

grids: check                   ## the experiment grids (params.yaml `ablations`, `levels`, ...) as a Prefect flow; DVC reuses cached cells
	python -m flows.grids

grids-large: check          ## a wider study than the default grids as a DVC experiment, applied, then the claims (hours on 2 cores)
	name=grids-large-$$(date +%Y%m%d-%H%M%S) && \
	python -m flows.grids --name $$name \
		--methods neggrad_plus finetune l1_sparse salun scrub del --kinds low mid high mix \
		--set 'rum_compare.group_scores=[confidence, loss_curvature, holdout_retrain]' \
		--set 'rum_compare.strategies=[vanilla, shuffle, rum_f]' \
		--set 'entanglement.kinds=[low, mid, high]' && \
	python -m dvc exp apply $$name && python -m dvc repro claims

ui: setup                   ## browse runs and models in the MLflow UI (http://127.0.0.1:5000)
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --host 127.0.0.1 --port 5000

list: setup                 ## registered datasets, models, proxies, methods
	memunlearn list

report: setup               ## the last run's headline, claims with verdicts and where to look next (after `make run`)
	memunlearn report

top: setup                  ## the 50 most memorized training examples, labels and planted noise (after `make run`)
	memunlearn top --n 50
