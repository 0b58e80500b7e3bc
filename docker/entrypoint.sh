#!/usr/bin/env bash
# Entry point of the pointnormals image: `docker run IMAGE COMMAND [ARGS...]`.
#   train ARGS...               -> python /app/train.py ARGS...              (Hydra overrides)
#   predict ARGS...             -> python /app/predict.py ARGS...
#   check-equivariance ARGS...  -> python /app/scripts/check_equivariance.py ARGS...
#   help | --help | -h | none   -> usage
#   anything else               -> run as is (bash, python, nvidia-smi, ...)
# POINTNORMALS_DRY_RUN=1 prints the command instead of running it.
set -euo pipefail

APP_DIR=${POINTNORMALS_APP_DIR:-/app}

usage() {
  cat <<USAGE
Usage: docker run [--gpus all] [-v HOST_DIR:/data] IMAGE COMMAND [ARGS...]

Commands:
  train [HYDRA_OVERRIDES...]    train a model: python $APP_DIR/train.py ...
                                e.g. train model=tf_pointnet trainer=gpu
                                     train model=tf_pointnet trainer=ddp trainer.devices=4
  predict INPUT.ply [-o OUT.ply] [--device auto|cpu|cuda] [--checkpoint PATH]
                                estimate normals: python $APP_DIR/predict.py ...
  check-equivariance [ARGS...]  python $APP_DIR/scripts/check_equivariance.py ...
  help, --help, -h              this message
  anything else                 run as is, e.g. bash, python, nvidia-smi

Environment:
  WANDB_MODE       offline (default), online or disabled; online needs WANDB_API_KEY
  WANDB_API_KEY    pass with -e WANDB_API_KEY; never bake it into the image
  POINTNORMALS_DRY_RUN=1  print the command instead of running it

Files: config in $APP_DIR/conf; runs write $APP_DIR/logs/train/runs/RUN_NAME, the dataset cache
is $APP_DIR/data (mount host directories on both to keep them); caches live in /cache.
USAGE
}

# Run (exec) a command, or print it shell-quoted in dry-run mode.
run() {
  if [[ "${POINTNORMALS_DRY_RUN:-0}" == "1" ]]; then
    printf '%q' "$1"
    shift
    if [[ $# -gt 0 ]]; then printf ' %q' "$@"; fi
    printf '\n'
    exit 0
  fi
  exec "$@"
}

if [[ $# -eq 0 ]]; then
  usage
  exit 0
fi

command=$1
shift
case "$command" in
  train) run python "$APP_DIR/train.py" "$@" ;;
  predict) run python "$APP_DIR/predict.py" "$@" ;;
  check-equivariance) run python "$APP_DIR/scripts/check_equivariance.py" "$@" ;;
  help | --help | -h) usage ;;
  *) run "$command" "$@" ;;
esac
