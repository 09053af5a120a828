# Two commands do all the setup: `make demo` and `make test`. Both create .venv when it is
# missing and install the project (pip install -e . with every extra, at the versions in
# constraints.txt) only when a requirements file changed. `make install CONSTRAINTS=` installs
# the newest versions the ranges in pyproject.toml allow instead.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO := demo-out
CONSTRAINTS ?= constraints.txt
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test test-fast demo lint bench

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt requirements-export.txt \
		$(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt \
		$(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	@touch $@

install: $(STAMP)

# pytest exits 5 when it collects nothing; that is reported, not hidden as a pass of real tests.
test: install
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest: no tests were collected"; exit 0; fi; exit $$status

# The inner loop: every test but those marked slow. CI (.ci/run) runs `make test`, all of them.
test-fast: install
	$(PY) -m pytest -m "not slow"

# A minute of training on a tiny model shows training and checkpointing at work; the cut-out
# itself comes from the shipped snapshot, which had hours of training.
demo: install
	$(PY) scripts/synthesize.py --out $(DEMO)/raw --count 12 --backgrounds 12 --size 256
	$(PY) scripts/combine.py $(DEMO)/raw --out $(DEMO)/data --per-fg 4 --test-per-fg 2
	$(PY) train.py $(DEMO)/data --log-dir $(DEMO)/log --steps 60 --batch-size 4 \
		--crop-size 128 --base-filters 8 --depth 3 --disc-filters 16 --save-every 20 \
		--val-every 30 --max-val-samples 4 --image-every 30
	$(PY) eval.py docs/demo/photo.png docs/demo/trimap.png $(DEMO)/cutout.png \
		--checkpoint log/pretrained --alpha $(DEMO)/cutout_alpha.png
	$(PY) eval.py docs/demo/astronaut.jpg $(DEMO)/astronaut.png --checkpoint log/pretrained \
		--save-trimap $(DEMO)/astronaut_trimap.png
	@echo "demo: RGBA cut-out in $(DEMO)/cutout.png (matte: $(DEMO)/cutout_alpha.png);" \
		"image-only cut-out of a photograph in $(DEMO)/astronaut.png;" \
		"tiny training runs in $(DEMO)/log/"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Benchmarks are never part of the test run: each takes minutes and wants an idle machine.
bench: install
	@for name in combine download train eval video serve; do \
		echo "== bench/$$name.py"; $(PY) bench/$$name.py || exit 1; done
