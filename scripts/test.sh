#!/usr/bin/env bash
# The test command: set up, start what the tests need (a local single-node Slurm when run as root), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=()  # as root, the venv comes from a system python that the lab tests' second Unix users may run too
if [ "$(id -u)" = 0 ] && [ ! -e .venv ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
  shared=(--python /usr/bin/python3)
fi
bash scripts/setup.sh "${shared[@]}"
if [ "$(id -u)" = 0 ]; then  # the lab tests run mihd as two other users: they must be able to reach this checkout
  d=$PWD
  while [ "$d" != / ]; do
    case "$(stat -c %A "$d")" in *x|*t) ;; *) chmod o+x "$d" && echo "test.sh: let other users traverse $d (the lab tests)";; esac
    d=$(dirname "$d")
  done
fi
.venv/bin/python -m pip install -q -e '.[baselines]'  # GraphST, STAGATE, SpaGCN: their tests need the packages
started_slurm=0
if [ -x scripts/slurm/start.sh ] && [ "$(id -u)" = 0 ]; then
  bash scripts/slurm/start.sh >/dev/null && started_slurm=1
fi
started_twohost=0
if [ "$(id -u)" = 0 ]; then  # two sshfs mounts as two hosts (tests marked twohost skip without them)
  bash scripts/twohost.sh start >/dev/null && started_twohost=1 || true
fi
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
[ "$started_slurm" = 1 ] && bash scripts/slurm/stop.sh || true
[ "$started_twohost" = 1 ] && bash scripts/twohost.sh stop || true
exit $status
