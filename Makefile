# make sanitize: the compiled lease scanner built with AddressSanitizer and UBSan, then the
# differential tests (tests/test_scanner.py; tests/test_balance.py for its balance counts)
# and a longer hypothesis run against it.
# Needs gcc and the venv of the README's set-up commands. 0 findings = exit status 0.

PYTHON ?= .venv/bin/python
# Cases per hypothesis test of both (random, not derandomized).
SANITIZE_EXAMPLES ?= 5000
SAN := build/sanitize
LIBASAN = $(shell gcc -print-file-name=libasan.so)

.PHONY: sanitize
sanitize:
	rm -rf $(SAN) && mkdir -p $(SAN)
	cp -r dhcpfoctl setup.py pyproject.toml README.md $(SAN)/
	rm -f $(SAN)/dhcpfoctl/leases/*.so
	cd $(SAN) && DHCPFOCTL_SANITIZE=1 $(abspath $(PYTHON)) setup.py -q build_ext --inplace
	# The interpreter is not instrumented: its leaks are not ours (detect_leaks=0), and
	# PYTHONMALLOC=malloc puts every Python and PyMem buffer under ASan's red zones; -P keeps
	# the work tree's own build behind the sanitized one on the path.
	PYTHONPATH=$(SAN):. LD_PRELOAD=$(LIBASAN) PYTHONMALLOC=malloc \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	DHCPFOCTL_SCANNER_EXAMPLES=$(SANITIZE_EXAMPLES) DHCPFOCTL_SCANNER_EXPECT=$(abspath $(SAN)) \
	$(PYTHON) -P -m pytest -q -x --tb=short -p no:randomly -p no:cacheprovider tests/test_scanner.py \
		tests/test_balance.py
