#!/usr/bin/env bash
# Quality on real data: every model side by side in one `glom evaluate` run per dataset — same tasks, same
# splits, P / R / PR-AUC / ROC-AUC, mean ± std over runs — under both protocols from the same fits: the
# paper's (GLoM §4.1, candidates = hidden purchasers + 10x sampled non-purchasers) and the realistic one
# (the hidden audience among every active non-seed user), plus the Fig. 5 / Fig. 6 sweeps.
# Results: benchmarks/results/quality_<dataset>_<protocol>.md / .json and their plots.
#
#   bash benchmarks/quality.sh [dataset ...]        # datasets: digital-music movielens mal (default: all)
#
# Knobs (environment): RUNS (5), TASKS (30), SWEEP_RUNS (1), PM_EPOCHS (15), GLM_EPOCHS (10), GLM_BATCH (8192),
# PM_BATCH (1024), MODELS (all), PROTOCOLS (sampled,all), PREPARE (1; 0 reuses the prepared run directory),
# SWEEP_MODELS (glom-attn1), SWEEPS (1; 0 skips the Fig. 5 / Fig. 6 sweeps), EXTRA (more `key=value`
# settings, space-separated, e.g. graph-model batch sizes for a large graph on few cores).
# OMP_NUM_THREADS=1 is advised when other jobs share the cores (torch's threads otherwise spin-wait).
# Data is read from $GLOM_DATA_DIR (default ../shared/data); run directories go to runs/quality/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${GLOM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
RUNS="${RUNS:-5}"; TASKS="${TASKS:-30}"; SWEEP_RUNS="${SWEEP_RUNS:-1}"
PM_EPOCHS="${PM_EPOCHS:-15}"; GLM_EPOCHS="${GLM_EPOCHS:-10}"; GLM_BATCH="${GLM_BATCH:-8192}"; PM_BATCH="${PM_BATCH:-1024}"; MODELS="${MODELS:-all}"
SWEEPS="${SWEEPS:-1}"; EXTRA="${EXTRA:-}"; PROTOCOLS="${PROTOCOLS:-sampled,all}"
GLOM=.venv/bin/glom
export MLFLOW_DISABLE_TELEMETRY=true DGLBACKEND=pytorch HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

source_for() {
  case "$1" in
    digital-music) echo "amazon2014 $DATA/amazon-digital-music-2014/reviews_Digital_Music_5.json.gz" ;;
    movielens) echo "movielens $DATA/movielens-latest-small" ;;
    mal) echo "mal $DATA/anime-mal" ;;
    *) echo "unknown dataset $1" >&2; exit 2 ;;
  esac
}

datasets=("$@"); [ ${#datasets[@]} -gt 0 ] || datasets=(digital-music movielens mal)
mkdir -p benchmarks/results
for name in "${datasets[@]}"; do
  read -r format path < <(source_for "$name")
  run_dir="runs/quality/$name"
  common=(--run-dir "$run_dir" --set "data.source_format=$format" --set "data.source_path=$path"
          --set "evaluate.max_tasks=$TASKS" --set "pm.epochs=$PM_EPOCHS" --set "glm.epochs=$GLM_EPOCHS" --set "glm.batch_size=$GLM_BATCH" --set "pm.batch_size=$PM_BATCH"
          --set "tracking.experiment=glom-quality-$name" --set "evaluate.candidates=${PROTOCOLS%%,*}")
  for setting in $EXTRA; do common+=(--set "$setting"); done
  sweep_args=(); [ "$SWEEPS" = "0" ] || sweep_args=(--sweeps --sweep-runs "$SWEEP_RUNS" --sweep-models "${SWEEP_MODELS:-glom-attn1}")
  start=$(date +%s)
  if [ "${PREPARE:-1}" = "1" ]; then  # PREPARE=0 reuses a run directory already prepared with these settings
    "$GLOM" prepare "${common[@]}"
    "$GLOM" profiles "${common[@]}"
  fi
  "$GLOM" evaluate "${common[@]}" --models "$MODELS" --runs "$RUNS" --protocols "$PROTOCOLS" "${sweep_args[@]}"
  seconds=$(( $(date +%s) - start ))
  command="OMP_NUM_THREADS=${OMP_NUM_THREADS:-} RUNS=$RUNS TASKS=$TASKS SWEEPS=$SWEEPS SWEEP_RUNS=$SWEEP_RUNS SWEEP_MODELS=${SWEEP_MODELS:-glom-attn1} PM_EPOCHS=$PM_EPOCHS GLM_EPOCHS=$GLM_EPOCHS GLM_BATCH=$GLM_BATCH PM_BATCH=$PM_BATCH MODELS=$MODELS PROTOCOLS=$PROTOCOLS EXTRA=\"$EXTRA\" bash benchmarks/quality.sh $name"
  first=${PROTOCOLS%%,*}
  IFS=, read -ra protocols <<< "$PROTOCOLS"
  for protocol in "${protocols[@]}"; do
    # the first protocol is the configured one (evaluate/); the others sit in evaluate/candidates-<name>/
    eval_dir="$run_dir/evaluate"; [ "$protocol" = "$first" ] || eval_dir="$run_dir/evaluate/candidates-$protocol"
    stem="benchmarks/results/quality_${name}_${protocol}"
    for plot in pr_curves embedding_size seed_size; do
      [ -f "$eval_dir/$plot.png" ] && cp "$eval_dir/$plot.png" "${stem}_${plot}.png"
    done
    {
      echo "# Quality: $name ($format, \`$path\`), protocol: $protocol"
      echo
      echo "- command: \`$command\`"
      echo "- machine: $(nproc --all) CPU cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, no GPU; $(uname -m)"
      echo "- date: $(date -u +%FT%TZ); wall time of prepare + profiles + evaluate (both protocols) + sweeps: ${seconds} s"
      echo "- plots: $(cd benchmarks/results && ls "quality_${name}_${protocol}"_*.png 2>/dev/null | tr '\n' ' ')"
      echo "- machine-readable: quality_${name}_${protocol}.json"
      echo
      cat "$eval_dir/table.md"
    } > "$stem.md"
    .venv/bin/python benchmarks/quality_record.py "$eval_dir/results.json" "$stem.json" --command "$command" --wall-s "$seconds"
    echo "wrote $stem.md"
  done
done
