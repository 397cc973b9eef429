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

.PHONY: all demo test venv browser data clean
all: demo

venv: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
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

# The main job: until the book lands, a short demo that writes _build/demo/demo.png.
demo: $(STAMP)
	$(OFFLINE) $(PY) -m vitnotes.demo

test: $(STAMP) browser data
	$(OFFLINE) $(PY) -m pytest -q

clean:
	rm -rf _build .pytest_cache
