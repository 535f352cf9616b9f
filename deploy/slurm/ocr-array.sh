#!/bin/bash
# Batch OCR of a document set as a SLURM job array (docs/scale.md): task INDEX of COUNT takes
# its share of the inputs (--shard, sorted by path); a requeued or rerun task skips the inputs
# it already finished (resume markers in the output folders).
#   sbatch --array=0-15 deploy/slurm/ocr-array.sh /shared/in /shared/out
#SBATCH --job-name=dsocr-ocr
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --requeue
set -euo pipefail
IN=${1:?usage: sbatch --array=0-N ocr-array.sh IN_DIR OUT_DIR}
OUT=${2:?usage: sbatch --array=0-N ocr-array.sh IN_DIR OUT_DIR}
COUNT=${SLURM_ARRAY_TASK_COUNT:?run it with sbatch --array}
INDEX=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN))
dsocr ocr "$IN" --out "$OUT" --shard "$INDEX/$COUNT" --devices all
