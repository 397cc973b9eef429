# Two commands on a fresh machine:  `make` (the main job)  and  `make test`.
# Both create the virtual environment first if needed (idempotent).
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
# The CPU build of torch 2.13.0 lies on these machines' disk. Elsewhere use e.g.
#   make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
STAMP      := $(VENV)/.installed
OFFLINE    := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg

.PHONY: all demo test lint venv browser data clean book notebooks nbval static zoo zoo-promote gpu-check plain-install check test-min
all: book

venv: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,book]"
	touch $@

# The static pages' widget manager (served by the pages themselves) and a headless browser
# for the tests that open them: npm's lock file pins the bundle; Debian's chromium when root.
EMBED_JS := node_modules/@jupyter-widgets/html-manager/dist/embed.js
$(EMBED_JS): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

browser: $(EMBED_JS)
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	  else echo "chromium is missing: sudo apt-get install chromium (the browser test will be skipped)"; fi; }

# Fashion-MNIST, offline: Debian's dataset-fashion-mnist (or set VITNOTES_FASHION_MNIST=folder).
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
data:
	@test -f $(FMNIST) || test -n "$$VITNOTES_FASHION_MNIST" || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist; }; \
	  else echo "Fashion-MNIST is missing: sudo apt-get install dataset-fashion-mnist"; fi; }

# A short demo on random weights that writes _build/demo/demo.png.
demo: $(STAMP)
	$(OFFLINE) $(PY) -m vitnotes.demo

# ---------------------------------------------------------------- the book
# The pages serve their own JavaScript: the widget manager (and its fonts) and MathJax.
MATHJAX := node_modules/mathjax/es5
static: $(EMBED_JS)
	rm -rf _static && mkdir -p _static/mathjax/output/chtml/fonts
	cp node_modules/@jupyter-widgets/html-manager/dist/embed.js _static/
	cp node_modules/@jupyter-widgets/html-manager/dist/*.woff* node_modules/@jupyter-widgets/html-manager/dist/*.ttf \
	   node_modules/@jupyter-widgets/html-manager/dist/*.eot node_modules/@jupyter-widgets/html-manager/dist/*.svg _static/
	cp $(MATHJAX)/tex-chtml.js _static/mathjax/
	cp -r $(MATHJAX)/output/chtml/fonts/woff-v2 _static/mathjax/output/chtml/fonts/

# The main job: the static HTML book in _build/html from the committed, executed notebooks.
# Strict: any Sphinx warning (-W) or broken reference (-n) fails the build.
book: $(STAMP) static
	$(OFFLINE) $(VENV)/bin/jupyter-book build . --all --warningiserror --nitpick --keep-going

# Re-execute notebooks (all, or NB="notebooks/01_layers.py ...") from their .py source into the
# paired .ipynb, in place. Quiet (no progress bars) so the outputs match what nbval re-runs.
NB ?= $(sort $(wildcard notebooks/[0-9]*.py))
NBENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VITNOTES_QUIET=1 PYDEVD_DISABLE_FILE_VALIDATION=1
notebooks: $(STAMP)
	@for f in $(NB); do echo "executing $$f"; \
	  $(VENV)/bin/jupytext --quiet --to ipynb --update "$$f" && \
	  $(NBENV) $(VENV)/bin/jupyter-execute --inplace --timeout=1200 "$${f%.py}.ipynb" || exit 1; done

# nbval: re-execute every notebook and compare its printed outputs with the committed ones, at the
# precision they were printed with (tests/nbval_tolerance: a decimal may move by 2 units of its last
# digit, as another CPU's summation order moves it; words, integers and signs must match). The
# kernels run behind tests/netguard (outside connections refused and logged); a logged attempt fails.
NETLOG := $(CURDIR)/.nbval-network.log
NBVAL := rm -f $(NETLOG) && $(NBENV) VITNOTES_NET_LOG=$(NETLOG) \
         PYTHONPATH=$(CURDIR)/tests/netguard:$(CURDIR)/tests/nbval_tolerance \
         $(PY) -m pytest -q -p no:cacheprovider -p nbval_tolerance --nbval --nbval-current-env \
         --nbval-sanitize-with notebooks/sanitize.cfg notebooks && \
         { test ! -s $(NETLOG) || { echo "a notebook tried to reach the network:"; cat $(NETLOG); exit 1; }; }
nbval: $(STAMP) data
	$(NBVAL)

# The layout's rules (import-linter contracts in pyproject.toml), ruff lint and format, the unit tests, nbval.
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The quick tier (<= 5 min on 2 cores): the layout's rules, ruff, and the unit tests not marked slow
# (tests/conftest.py lists the slow ones, measured). Run it while you work; `make test` before a push.
check: $(STAMP) lint
	$(OFFLINE) $(PY) -m pytest -q -m "not slow" --durations=10

# Everything: the quick tier, the slow tests (book, browser, hub notebooks, memory), the lower bounds
# (test-min), a plain install (plain-install) and nbval. pytest prints its slowest tests, nbval each
# notebook's time.
test: $(STAMP) browser data static lint
	$(OFFLINE) $(PY) -m pytest -q --durations=20
	$(MAKE) --no-print-directory test-min plain-install
	$(NBVAL)

# The lower bounds of pyproject.toml (constraints-min.txt) in their own venv, through the quick tier.
MIN := _build/min-venv
$(MIN)/.installed: pyproject.toml constraints-min.txt
	test -x $(MIN)/bin/python || $(PYTHON) -m venv $(MIN)
	$(MIN)/bin/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(MIN)/bin/python -m pip install -q --disable-pip-version-check -c constraints-min.txt ".[test]"
	touch $@
# The book extra is not in this venv: its tests skip here (without CI's "never skip" guard, env -u CI);
# they run in .venv with everything else.
test-min: $(MIN)/.installed data
	env -u CI $(OFFLINE) $(MIN)/bin/python -m pytest -q -p no:cacheprovider -m "not slow"

# ---------------------------------------------------------------- zoo v2 (hours of CPU; resumable)
# Trains the zoo's second recipes into a staging zoo, in dependency order (the ResNet teaches the
# ViTs; p2 and spectro-vit start from p4). Each step is skipped once its model is there; an interrupted
# step resumes from its checkpoint in $$VITNOTES_HOME/work/. Stage 1 of the two v1 continuations is
# zoo v1's run (ZOO_V1: a copy of the v1 folders). `make zoo-promote` copies finished models into
# vitnotes/zoo/ (then re-execute the notebooks).
ZOO_STAGE ?= $(HOME)/.cache/vitnotes/zoo-v2
ZOO_V1    ?= $(HOME)/.cache/vitnotes/v1
TRAIN     := $(OFFLINE) VITNOTES_ZOO=$(ZOO_STAGE) $(PY) -m vitnotes.train
zoo: $(STAMP) data
	@mkdir -p $(ZOO_STAGE)
	test -f $(ZOO_STAGE)/fmnist-resnet/.v2 || { $(TRAIN) fmnist-resnet --start-from $(ZOO_V1)/fmnist-resnet && touch $(ZOO_STAGE)/fmnist-resnet/.v2; }
	test -f $(ZOO_STAGE)/spectro-resnet/card.json || $(TRAIN) spectro-resnet
	test -f $(ZOO_STAGE)/fmnist-vit-p4/.v2 || { $(TRAIN) fmnist-vit-p4 --start-from $(ZOO_V1)/fmnist-vit-p4 && touch $(ZOO_STAGE)/fmnist-vit-p4/.v2; }
	test -f $(ZOO_STAGE)/spectro-vit/.v2 || { $(TRAIN) spectro-vit && touch $(ZOO_STAGE)/spectro-vit/.v2; }
	test -f $(ZOO_STAGE)/fmnist-vit-p2/.v2 || { $(TRAIN) fmnist-vit-p2 && touch $(ZOO_STAGE)/fmnist-vit-p2/.v2; }
	for s in 1 2; do n=spectro-vit$$( [ $$s = 0 ] || echo -s$$s ); \
	  test -f $(ZOO_STAGE)/$$n/.v2 || { $(TRAIN) spectro-vit --seed $$s && touch $(ZOO_STAGE)/$$n/.v2; } || exit 1; done

zoo-promote:
	@for d in $(ZOO_STAGE)/*/; do n=$$(basename $$d); test -f $$d/.v2 -o "$$n" = spectro-resnet || continue; \
	  echo "promoting $$n"; rm -rf vitnotes/zoo/$$n && mkdir -p vitnotes/zoo/$$n && \
	  cp $$d/config.json $$d/model.safetensors $$d/preprocessor_config.json $$d/card.json $$d/README.md vitnotes/zoo/$$n/; done

clean:
	rm -rf _build .pytest_cache

# A plain install, as a library user makes it: a fresh venv with torch and `pip install .` (no extras,
# no constraints), then every registered method on a zoo ViT and the zoo ResNet, and the CLI.
PLAIN := _build/plain-venv
plain-install: data
	rm -rf $(PLAIN) && $(PYTHON) -m venv $(PLAIN)
	$(PLAIN)/bin/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PLAIN)/bin/python -m pip install -q --disable-pip-version-check .
	cd $(PLAIN) && $(OFFLINE) bin/python $(CURDIR)/tools/plain_install_check.py

# The GPU check: benchmarks and CPU-against-CUDA agreement in one run (<= 8 min), pasted into
# benchmarks/RESULTS.md. `make gpu-check ARGS=--dry-run` runs the same code paths on the CPU.
gpu-check:
	tools/gpu_check.sh $(ARGS)

# The explorer (vn.show.explore, apps/explore.ipynb) as a standalone app served by Voilà on
# http://127.0.0.1:$(EXPLORE_PORT), localhost only, no token. The template apps/voila/templates/vitnotes
# is Voilà's lab template without its CDN links (Font Awesome, mermaid): the app fetches nothing from
# outside. Hub models need the network: make explore EXPLORE_ENV=MPLBACKEND=Agg
EXPLORE_PORT ?= 8866
EXPLORE_ENV  ?= $(OFFLINE)
.PHONY: explore
explore: $(STAMP)
	$(EXPLORE_ENV) JUPYTER_PATH=$(CURDIR)/apps $(VENV)/bin/voila apps/explore.ipynb --template=vitnotes \
	  --no-browser --Voila.ip=127.0.0.1 --port=$(EXPLORE_PORT) --token=
