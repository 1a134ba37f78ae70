# The two commands of the README:  `make demo`  and  `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=

.PHONY: setup demo test unit bench system clean broker dashboards

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

# The tests without a broker on both cores (pytest-xdist); then those with the real broker in two lanes: the long
# ones (marked `long`: the 30-day evaluation with kills, half the integration time) in the background, the others one
# after another beside them (most of their time is waiting for brokers, groups and timeouts, so the two lanes share
# the cores). The long lane's output follows the other's. ARGS go to every lane; a lane that selects no test (exit
# code 5) is not a failure.
test: setup
	$(BIN)/python -m pytest -m "not integration" -n 2 --dist worksteal --durations=15 $(ARGS) || [ $$? -eq 5 ]
	@mkdir -p .zhijian
	@( $(BIN)/python -m pytest -m "integration and long" --basetemp .zhijian/pytest-long --durations=5 $(ARGS) \
	    > .zhijian/test-long.log 2>&1; echo $$? > .zhijian/test-long.rc ) & \
	$(BIN)/python -m pytest -m "integration and not long" --durations=15 $(ARGS); others=$$?; wait; \
	echo "--- the long lane (.zhijian/test-long.log):"; cat .zhijian/test-long.log; long=$$(cat .zhijian/test-long.rc); \
	{ [ $$others -eq 0 ] || [ $$others -eq 5 ]; } && { [ $$long -eq 0 ] || [ $$long -eq 5 ]; }

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
