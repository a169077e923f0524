#!/usr/bin/env bash
# One command for a few minutes on a GPU: check CUDA, bf16 autocast and NCCL, run every network on CUDA
# (bench/bench_cuda.py, with a training step), then train HSENet x4 (fine-tuning the shipped hsenet_x4_ucmerced16)
# and ConvFormerSR x3 (from the shipped convformersr_x3_ucmerced16 when there is one) on UC Merced, half of the
# budget each, and put their best weights and logs into $OUT in parts of at most 15 MiB. Every run is resumable: a
# second call continues both where they stopped.
#
#   cd codes && bash gpu_session.sh 10                       # 10 minutes of training in all
#   UCM_SRC=/data/UCMerced_LandUse/Images bash gpu_session.sh  # prepares datasets/UCMerced first when it is missing
#   GPU_SESSION_CPU=1 bash gpu_session.sh 2                  # the same steps on the CPU at a tiny budget (a dry run)
#
# The data, in this order: datasets/UCMerced (prepared), UCM_SRC (prepared here), datasets/UCMerced_pack (made by
# `python data_scripts/pack_dataset.py --src ../datasets/UCMerced --dst ../datasets/UCMerced_pack`: about a third of
# the training images, 28 MiB, for a machine without the data; LR made on the fly). The runs are
# experiment/HSENETx4_UCMerced_gpu and experiment/CONVFORMERSRx3_UCMerced_gpu. $OUT/results.tar.part-* (join with
# `cat results.tar.part-* | tar x`, checked by results.sha256) holds each run's model_best.pt as pretrained_zoo.py
# ship writes it (weights, configuration, radiometry) and its log.txt and metrics.csv; ship one with pretrained_zoo.py
# ship once it beats the shipped model.
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:-10}
half=$(python -c "print(max(float('$minutes') / 2, 0.5))")
cpu=()
bench=(--train)
if [[ -n "${GPU_SESSION_CPU:-}" ]]; then
    cpu=(--cpu --test_every 2 --epochs 2)  # the dry run: two tiny epochs per network
fi

python - "${GPU_SESSION_CPU:-}" <<'EOF'
import sys
import torch
import torch.distributed as dist

dry_run = bool(sys.argv[1])
print(f"torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available'}")
if torch.cuda.is_available():
    print(f"device {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}, "
          f"NCCL {dist.is_nccl_available()}")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = torch.nn.Conv2d(3, 8, 3).cuda()(torch.rand(1, 3, 16, 16, device="cuda"))
    print(f"bf16 autocast: {y.dtype}")
elif not dry_run:
    sys.exit("no CUDA device: run on the GPU machine, or set GPU_SESSION_CPU=1 for a dry run on the CPU")
EOF

if [[ -z "${GPU_SESSION_CPU:-}" ]]; then
    python ../bench/bench_cuda.py "${bench[@]}"  # every network: CUDA against the CPU, bf16, a training step's img/s
fi

data=(--dataset=UCMerced)
if [[ ! -f ../datasets/UCMerced/dataset.json ]]; then
    if [[ -n "${UCM_SRC:-}" ]]; then
        python data_scripts/prepare_dataset.py --src "$UCM_SRC" --dst ../datasets/UCMerced --protocol ucmerced
    elif [[ -f ../datasets/UCMerced_pack/dataset.json ]]; then
        data=(--dataset=HROnly --dir_data ../datasets/UCMerced_pack)
        echo "training on the pack datasets/UCMerced_pack (LR made on the fly)"
    else
        echo "datasets/UCMerced is missing: set UCM_SRC to the UC Merced Images folder, or bring" \
             "datasets/UCMerced_pack (data_scripts/pack_dataset.py)" >&2
        exit 2
    fi
fi

shipped() {  # shipped NAME: true when pretrained/index.json lists NAME
    python -c "import sys, pretrained; sys.exit(0 if pretrained.find('$1') else 1)"
}

train() {  # train SAVE START FLAGS...: a new run from START (a shipped model, or '' for none), or the run continued
    local save=$1 start=$2
    shift 2
    local from=()
    if [[ -f ../experiment/$save/model/model_latest.pt ]]; then
        from=(--resume)
    elif [[ -n "$start" ]] && shipped "$start"; then
        from=(--pre_train "$start")
    fi
    torchrun --standalone --nproc_per_node 1 demo_train.py "$@" "${data[@]}" --precision bf16 \
        --time_budget "$half" --save "$save" "${from[@]}" "${cpu[@]}"
}

train HSENETx4_UCMerced_gpu hsenet_x4_ucmerced16 --model=HSENET --scale=4
train CONVFORMERSRx3_UCMerced_gpu convformersr_x3_ucmerced16 --model=CONVFORMERSR --scale=3

if [[ -n "${OUT:-}" ]]; then  # what comes back from the machine: files of at most 16 MiB, 8 in all
    python - "$OUT" HSENETx4_UCMerced_gpu CONVFORMERSRx3_UCMerced_gpu <<'EOF'
import sys
from pathlib import Path

import checkpoint
import paths

out, runs = Path(sys.argv[1]) / "results", sys.argv[2:]
for save in runs:
    run = paths.run_dir(save, paths.EXPERIMENT_DIR)
    best = checkpoint.read(run / "model" / checkpoint.BEST)
    target = out / save
    target.mkdir(parents=True, exist_ok=True)
    checkpoint.save(target / checkpoint.BEST, {key: best.payload[key] for key in ("model", "config", "radiometry")})
    for name in ("log.txt", "metrics.csv"):
        (target / name).write_bytes((run / name).read_bytes())
EOF
    (cd "$OUT" && tar cf - results | split -b 15M - results.tar.part- && rm -r results \
        && sha256sum results.tar.part-* > results.sha256 && ls -l results.tar.part-*)
fi
