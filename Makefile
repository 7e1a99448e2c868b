# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test viz notebook mlflow-ui serve simulate-devices benchmark benchmark-kedro-run benchmark-data benchmark-ingestion benchmark-speed benchmark-scale benchmark-replay benchmark-replay-speed clean-outputs

DATASET ?= ml-100k
METHOD ?= duet+swa
ENCODING ?= float32
GRID_ARGS ?=
SPEED_ARGS ?=  # --grid also times the full ml-100k grid (over an hour)

# The venv is (re)installed whenever pyproject.toml changes; the stamp files record that.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The dev extra holds everything .installed does: one pip call (a first `make test` resolves
# and builds the project once, not twice) stamps both.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

run: $(VENV)/.installed  ## the full DUET pipeline on the shipped ml-latest-small
	$(BIN)/kedro run --pipelines=duet

test: $(VENV)/.installed-dev  ## the test suite
	$(BIN)/python -m pytest

viz: $(VENV)/.installed  ## the pipeline DAG at http://127.0.0.1:4141 (a static build in build/, served over HTTP)
	$(BIN)/kedro viz build
	@echo "Serving the DAG at http://127.0.0.1:4141 (Ctrl-C stops)"
	$(BIN)/python -m http.server 4141 --bind 127.0.0.1 --directory build

notebook: $(VENV)/.installed-dev  ## notebooks/compare_runs.ipynb in Jupyter at http://127.0.0.1:8888
	$(BIN)/jupyter lab notebooks/compare_runs.ipynb --ip 127.0.0.1 --port 8888

mlflow-ui: $(VENV)/.installed  ## browse and compare runs at http://127.0.0.1:5000 (prints each experiment's runs table)
	@$(BIN)/python -m duet_pipeline.mlflow_links sqlite:///mlflow.db http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

serve: $(VENV)/.installed  ## the latest registered head generator on 127.0.0.1:5055 (after `kedro run --pipelines=serving`)
	$(BIN)/python -m duet_pipeline.serving.serve

simulate-devices: $(VENV)/.installed  ## devices over HTTP against the served generator, ONNX on the device; writes docs/benchmarks.md
	$(BIN)/python benchmarks/simulate_devices.py --method $(METHOD) --encoding $(ENCODING) $(SIMULATE_ARGS)

benchmark: $(VENV)/.installed  ## the paper's grid on DATASET (resumable); writes docs/RESULTS.md
	$(BIN)/python benchmarks/grid.py --dataset $(DATASET) $(GRID_ARGS)

benchmark-replay: $(VENV)/.installed  ## the value of real time on DATASET: replay over 3 seeds (resumable); writes docs/RESULTS.md
	$(BIN)/python benchmarks/replay.py --dataset $(DATASET) $(REPLAY_ARGS)

benchmark-replay-speed: $(VENV)/.installed  ## the replay of every ml-100k device, every policy, one method, timed alone
	$(BIN)/python benchmarks/bench_replay_speed.py $(REPLAY_SPEED_ARGS)

benchmark-kedro-run: $(VENV)/.installed  ## wall time of `kedro run --pipelines=duet` on the shipped data
	$(BIN)/python benchmarks/bench_kedro_run.py

benchmark-data: $(VENV)/.installed  ## ingestion + features speed (ml-100k, generated ml-1m size)
	$(BIN)/python benchmarks/bench_data_pipeline.py

benchmark-ingestion: $(VENV)/.installed  ## ingestion of 1M events in each declared layout (MovieLens, Amazon CSV/JSONL, clickstream, parquet)
	$(BIN)/python benchmarks/bench_ingestion.py

benchmark-scale: $(VENV)/.installed-dev  ## pandas vs Spark data stages, streaming + DDP training at synthetic-1m/5m/25m (resumable)
	$(BIN)/python benchmarks/bench_scale.py $(SCALE_ARGS)

benchmark-speed: $(VENV)/.installed  ## every speed figure (training, evaluation, kedro run, RSS, fine-tune, side by side)
	$(BIN)/python benchmarks/bench_speed.py $(SPEED_ARGS)

clean-outputs:  ## delete run outputs (versioned datasets, MLflow runs)
	find data -mindepth 2 -not -name .gitkeep -not -path 'data/01_raw*' -delete
	rm -rf mlflow.db mlruns build
