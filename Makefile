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

# Regenerate tests/schema_snapshot.sql and list new migrations in tests/data/landed_migrations.sha256.
snapshot: $(STAMP)
	$(BIN)/python tests/snapshot.py --update

clean:
	-$(BIN)/convkey db stop
	rm -rf $(VENV) .convkey dist build
