#!/usr/bin/env bash
# Quality check for the training-speed work (issue 13, "quality unchanged"): `glom-seedset` under both
# protocols on each prepared dataset, with the settings its recorded quality run used (the commands in
# benchmarks/results/quality_<dataset>_sampled.md), on a scratch copy of the run directory, so neither the
# recorded result files nor runs/quality/ are touched. Writes benchmarks/results/train_speed_quality.{md,json}
# (recorded vs now, per dataset and protocol).
#
#   bash benchmarks/train_speed_quality.sh [dataset ...]      # digital-music movielens mal (default: all)
#
# Knobs: RUNS (5), TASKS (30), SCRATCH (/tmp/glom-train-speed-quality).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"; TASKS="${TASKS:-30}"; SCRATCH="${SCRATCH:-/tmp/glom-train-speed-quality}"
export MLFLOW_DISABLE_TELEMETRY=true DGLBACKEND=pytorch HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

settings_for() {  # the recorded quality run's training settings (its file's command)
  case "$1" in
    digital-music) echo "pm.epochs=15 glm.epochs=30 glm.batch_size=8192 pm.batch_size=1024" ;;
    movielens) echo "pm.epochs=10 glm.epochs=30 glm.batch_size=8192 pm.batch_size=4096" ;;
    mal) echo "pm.epochs=5 glm.epochs=15 glm.batch_size=65536 pm.batch_size=16384 glm.seedset_batch=128" ;;
    *) echo "unknown dataset $1" >&2; exit 2 ;;
  esac
}

datasets=("$@"); [ ${#datasets[@]} -gt 0 ] || datasets=(digital-music movielens mal)
mkdir -p "$SCRATCH"
for name in "${datasets[@]}"; do
  src="runs/quality/$name"; run_dir="$SCRATCH/$name"
  [ -f "$src/graph/triples.parquet" ] || { echo "$src is not prepared (bash benchmarks/quality.sh $name)" >&2; exit 2; }
  rm -rf "$run_dir"; mkdir -p "$run_dir"
  for part in ingest graph profiles cache validation config.resolved.json; do
    [ -e "$src/$part" ] && cp -r "$src/$part" "$run_dir/"
  done
  args=(--run-dir "$run_dir" --set "evaluate.max_tasks=$TASKS" --set "evaluate.candidates=sampled"
        --set "tracking.tracking_uri=sqlite:///$SCRATCH/mlflow.db" --set "tracking.experiment=train-speed-$name")
  for setting in $(settings_for "$name"); do args+=(--set "$setting"); done
  start=$(date +%s)
  .venv/bin/glom evaluate "${args[@]}" --models glom-seedset --runs "$RUNS" --protocols sampled,all
  echo "$name $(( $(date +%s) - start ))" >> "$SCRATCH/wall.txt"
done
.venv/bin/python benchmarks/train_speed_quality.py --scratch "$SCRATCH" --runs "$RUNS" --tasks "$TASKS" "${datasets[@]}"
