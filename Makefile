# Entry points. `make run` and `make test` are all a new machine needs (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTHON ?= python3

.PHONY: install run test bench lint format demo worker beat clean messages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo --history-weeks 6

# gunicorn (threads) for HTTP, and a Celery worker with its beat on kombu's filesystem broker
# (var/broker) for the schedule: expiries, reminders, webhooks run with nothing installed.
run: demo
	@$(PY) manage.py demo_banner --host $(HOST) --port $(PORT)
	$(PY) manage.py run_embedded --host $(HOST) --port $(PORT)

test: install
	bash scripts/test.sh

bench: install
	bash bench/run.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Production-style processes (need REDIS_URL and DATABASE_URL).
worker: install
	$(VENV)/bin/celery -A config worker --loglevel=info

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=info

clean:
	rm -rf var/ staticfiles/

# The French catalogue: collect the marked strings (then translate the new empty entries in
# locale/fr/LC_MESSAGES/django.po) and compile it; both files are committed (docs/i18n.md).
messages: install
	$(PY) manage.py makemessages -l fr --no-location $(foreach dir,.venv tests bench staticfiles var scripts,-i "$(dir)/*")
	$(PY) manage.py compilemessages -l fr -i .venv
