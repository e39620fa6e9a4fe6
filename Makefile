# One command for the demo, one for the tests; both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.convkey-installed

.PHONY: test demo bench reliability lint clean venv snapshot

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/convkey demo $(DEMO_ARGS)

# Benchmarks (scripts, not tests): a throwaway cluster with normal durability, every comparison of
# bench/, ratios printed and written to BENCHMARKS.md. Sizes: make bench BENCH_ARGS="--duration 10 --reps 5".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Reliability: the tests marked `reliability` (faults, the reference model, the concurrent replay,
# ...) at a larger size than make test runs them, each recording its figures in a temporary folder,
# then RELIABILITY.md from those figures. RELIABILITY_SCALE: large (each test's own large size, the
# default) or a number every such test takes as its size. CI runs it after make test.
RELIABILITY_SCALE ?= large
RELIABILITY_PYTEST = $(strip CONVKEY_RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(BIN)/python -m pytest -m reliability $(PYTEST_ARGS))
reliability: $(STAMP)
	@dir=$$(mktemp -d); started=$$(date -u '+%Y-%m-%d %H:%M UTC'); \
	echo '$(RELIABILITY_PYTEST)'; \
	CONVKEY_RELIABILITY_DIR=$$dir $(RELIABILITY_PYTEST) --junitxml=$$dir/junit.xml; status=$$?; \
	$(BIN)/python -m reliability.report --dir $$dir --out RELIABILITY.md --scale '$(RELIABILITY_SCALE)' \
	  --pytest-status $$status --started "$$started" --command 'make reliability RELIABILITY_SCALE=$(RELIABILITY_SCALE)' \
	  --pytest-command 'CONVKEY_RELIABILITY_DIR=<temporary folder> $(RELIABILITY_PYTEST) --junitxml=<temporary folder>/junit.xml'; \
	report=$$?; rm -rf $$dir; test $$status -eq 0 && test $$report -eq 0

# Regenerate tests/schema_snapshot.sql and list new migrations in tests/data/landed_migrations.sha256.
snapshot: $(STAMP)
	$(BIN)/python tests/snapshot.py --update

clean:
	-$(BIN)/convkey db stop
	rm -rf $(VENV) .convkey dist build
