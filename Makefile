# The README's two commands: `make up` sets up and runs the whole local stack; `make test` runs the tests.
.PHONY: up test bootstrap protos

bootstrap:
	scripts/bootstrap

up: bootstrap
	.venv/bin/jobstream up

test: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	# pytest exits 5 when it collected no test: a suite that tests nothing must not pass silently.
	.venv/bin/pytest; rc=$$?; [ $$rc -ne 5 ] || echo 'make test: pytest collected no tests'; exit $$rc

protos:
	scripts/gen-protos
