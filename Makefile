# The two commands of the README:  `make demo`  and  `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=

.PHONY: setup demo test long-lane unit bench system clean broker dashboards

# The embedded broker: Apache Kafka's jars from Maven Central, pinned by deploy/kafka/pom.xml.
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)
KAFKA_LIBS ?= $(or $(ZHIJIAN_KAFKA_LIBS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/zhijian/kafka-$(KAFKA_VERSION)/lib)
KAFKA_STAMP := $(KAFKA_LIBS)/.complete

setup: $(STAMP) system $(KAFKA_STAMP)

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "zhijian needs Python 3.11; set PY=/path/to/python3.11")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# System packages: a JDK 17+ and Maven (the embedded Kafka broker), kcat (an independent Kafka client),
# prometheus with promtool (rules and dashboards checked against a real Prometheus) and docker-compose
# (to validate the compose file; no Docker engine is needed), Chromium and its driver (the workbench's
# pages are tested in a real headless browser), PostgreSQL (the workbench's store by URL, tested on a server
# the test starts; the service itself is not enabled).
system:
	@missing=""; \
	java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v kcat >/dev/null || missing="$$missing kcat"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(KAFKA_STAMP): | system  # the folder is named by the version: a new pin fetches anew
	@echo "fetching Apache Kafka $(KAFKA_VERSION) with Maven into $(KAFKA_LIBS)"
	@rm -rf $(KAFKA_LIBS) && mkdir -p $(KAFKA_LIBS)
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(KAFKA_LIBS)
	@touch $@

demo: setup
	$(BIN)/zhijian demo $(ARGS)

# Three lanes. The long one (tests marked `long`: the 30-day evaluation with kills, the longest test by far) starts
# first, in the background, in its own process group; beside it the tests without a broker run on both cores
# (pytest-xdist), then the other integration tests with the real broker one after another. The long lane is mostly a
# worker on one core and, while workers are killed and replaced, waiting for sessions to time out; the other lanes
# fill the rest (started after the tests without a broker, it finished a minute and a half after them: CI took
# 13m52s–15m19s). The long lane's output follows the others'. If the tests without a broker fail, the long lane is
# stopped and nothing else runs. ARGS go to every lane; a lane that selects no test (exit code 5) is not a failure.
test: setup
	@mkdir -p .zhijian && rm -f .zhijian/test-long.rc
	@setsid $(MAKE) --no-print-directory long-lane > .zhijian/test-long.log 2>&1 & long=$$!; \
	$(BIN)/python -m pytest -m "not integration" -n 2 --dist worksteal --durations=15 $(ARGS); unit=$$?; \
	if [ $$unit -ne 0 ] && [ $$unit -ne 5 ]; then kill -TERM -$$long 2>/dev/null; wait; exit $$unit; fi; \
	$(BIN)/python -m pytest -m "integration and not long" --durations=15 $(ARGS); others=$$?; wait; \
	echo "--- the long lane (.zhijian/test-long.log):"; cat .zhijian/test-long.log; long=$$(cat .zhijian/test-long.rc 2>/dev/null || echo 1); \
	{ [ $$others -eq 0 ] || [ $$others -eq 5 ]; } && { [ $$long -eq 0 ] || [ $$long -eq 5 ]; }

long-lane:  # the long lane of `make test` (its exit code in .zhijian/test-long.rc)
	@$(BIN)/python -m pytest -m "integration and long" --basetemp .zhijian/pytest-long --durations=5 $(ARGS); \
	echo $$? > .zhijian/test-long.rc

unit: setup
	$(BIN)/python -m pytest -m "not integration" $(ARGS)

broker: setup
	$(BIN)/zhijian broker $(ARGS)

dashboards: setup
	$(BIN)/python deploy/grafana/generate.py

bench: setup
	$(BIN)/zhijian bench --events 200000 --json bench.json $(ARGS)

clean:
	rm -rf $(VENV) .zhijian .pytest_cache  # the Kafka jars stay in $(KAFKA_LIBS)
