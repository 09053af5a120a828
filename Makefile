# Two commands do all the setup: `make demo` and `make test`. Both create .venv when it is
# missing and install the requirements only when a requirements file changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO := demo-out
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test demo lint bench

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

install: $(STAMP)

# pytest exits 5 when it collects nothing; that is reported, not hidden as a pass of real tests.
test: install
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest: no tests were collected"; exit 0; fi; exit $$status

demo: install
	$(PY) scripts/synthesize.py --out $(DEMO)/raw --count 12 --backgrounds 12 --size 320
	$(PY) scripts/combine.py $(DEMO)/raw --out $(DEMO)/data --per-fg 4 --test-per-fg 2
	@echo "demo dataset: $(DEMO)/data/{train,val,test}/{image,trimap,alpha,fg,bg}/"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) bench/combine.py
