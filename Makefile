# The README's two commands: `make up` sets up and runs the whole local stack; `make test` runs the tests.
.PHONY: up test bootstrap lint protos bench

bootstrap:
	scripts/bootstrap

up: bootstrap
	.venv/bin/jobstream up

test: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/pytest

protos:
	scripts/gen-protos
