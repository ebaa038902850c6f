#!/usr/bin/env bash
# Creates .venv (if missing) and installs MIHD with its test extras into it. Idempotent.
# `--python PY`: the interpreter the venv is made from (default: python3 on the PATH). A lab installs once for
# everyone: from a python every member can run (e.g. /usr/bin/python3, not a pyenv under root's 0700 home), in a
# folder the group can read; the last line says when other users could not run this install.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
if [ "${1:-}" = --python ]; then python=${2:?--python needs an interpreter, e.g. /usr/bin/python3}; fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -m mihd.install_check .venv/bin/python || true  # a note, never a failure: CI installs as root
