# Nimbo: `make run` sets up and runs the server; `make test` sets up and runs the tests.
# Both work on a fresh Debian machine as root with nothing but Python: they install what is missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_RUN := qemu-system-x86 qemu-utils socat busybox-static iproute2 nftables dnsmasq-base dropbear-bin
APT_IMAGE := mmdebstrap fdisk lz4 e2fsprogs
# libvirt (--backend libvirt): the daemon, LXC, the headers libvirt-python builds against, the schema validator
APT_LIBVIRT := libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu libvirt-daemon-driver-lxc libvirt-dev pkg-config gcc libxml2-utils
APT_TEST := $(APT_RUN) $(APT_IMAGE) $(APT_LIBVIRT) rclone s3cmd wrk awscli openssh-client chromium chromium-driver postgresql
ifneq (,$(findstring libvirt,$(ARGS)))
APT_RUN += $(APT_LIBVIRT)
PIP_EXTRAS := [libvirt]
endif
ARGS ?=

.PHONY: run test setup setup-test apt-run apt-test bench conformance clean debian-image

run: setup
	@if [ -n "$(PIP_EXTRAS)" ]; then $(PY) -c 'import libvirt' 2>/dev/null || $(PY) -m pip install -q libvirt-python; fi
	@echo "==> the tiny Linux image (built offline from Debian's packages the first time: about a minute)"
	$(PY) -m gateway.cli image build-tiny --if-missing $(ARGS) || echo "warning: the tiny image could not be built; EC2 has no image to launch" >&2
	@echo "==> starting Nimbo (Ctrl-C stops it)"
	$(PY) -m gateway.cli serve $(ARGS)

test: setup-test
	$(PY) -m pytest -q -p no:cacheprovider $(ARGS)

setup: apt-run $(VENV)/.installed
setup-test: apt-test $(VENV)/.installed-test

apt-run:
	@bash .ci/apt-ensure $(APT_RUN)

apt-test:
	@bash .ci/apt-ensure $(APT_TEST)

$(VENV)/bin/python:
	@echo "==> creating the virtual environment $(VENV)"
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3; }
	python3 -m venv $(VENV) 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv python3-pip && python3 -m venv $(VENV); }

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	@echo "==> installing Nimbo and its Python packages into $(VENV) (a few minutes the first time)"
	$(PY) -m pip install -q --upgrade pip
	set -o pipefail; $(PY) -m pip install -e '.$(PIP_EXTRAS)' | { grep -E '^(Collecting|Successfully)' || true; }
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "==> installing the test tools into $(VENV) (pytest, moto, pyarrow, libcloud ...)"
	set -o pipefail; $(PY) -m pip install -e '.[test]' | { grep -E '^(Collecting|Successfully)' || true; }
	touch $@

debian-image: setup
	@bash .ci/apt-ensure $(APT_IMAGE)
	$(PY) -m gateway.cli image build-debian --if-missing $(ARGS)

bench: setup-test
	@command -v npm >/dev/null && [ ! -x .cache/bench-peers/node_modules/.bin/s3rver ] && { npm install -s --no-audit --no-fund --prefix .cache/bench-peers s3rver@3 || echo "s3rver not installed: the bench runs without it" >&2; }; true
	$(PY) -m bench $(ARGS)

conformance: setup-test
	$(PY) -m conformance $(ARGS)

clean:
	rm -rf $(VENV) nimbo-data .pytest_cache
