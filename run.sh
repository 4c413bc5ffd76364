#!/usr/bin/env bash
# One command for a fresh machine: make the venv, install, and start the studio on the bundled demo model.
# Extra arguments go to app.py (e.g. `bash run.sh --host 0.0.0.0 --port 8080`).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -r requirements.txt
  # OpenPose body network for pose control; its declared deps (timm, torchvision) are not needed and break here.
  python -m pip install -q --no-deps controlnet-aux==0.0.10
  touch .venv/.installed
fi
exec python app.py "$@"
