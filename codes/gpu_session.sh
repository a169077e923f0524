#!/usr/bin/env bash
# One command for a few minutes on a GPU: check CUDA, bf16 autocast and NCCL, run every network on CUDA
# (bench/bench_cuda.py), then train HSENet x4 and ConvFormerSR x3 on UC Merced, half of the budget each. Every run
# is resumable: a second call continues both where they stopped.
#
#   cd codes && bash gpu_session.sh 10                       # 10 minutes in all
#   UCM_SRC=/data/UCMerced_LandUse/Images bash gpu_session.sh  # prepares datasets/UCMerced first when it is missing
#   GPU_SESSION_CPU=1 bash gpu_session.sh 2                  # the same steps on the CPU at a tiny budget (a dry run)
#
# The runs are experiment/HSENETx4_UCMerced_gpu and experiment/CONVFORMERSRx3_UCMerced_gpu; ship one with
# pretrained_zoo.py ship once it beats bicubic (its log says so at every validation).
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:-10}
half=$(python -c "print(max(float('$minutes') / 2, 0.5))")
cpu=()
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
    python ../bench/bench_cuda.py  # every network at its published size: CUDA against the CPU, bf16 against fp32
fi

if [[ ! -f ../datasets/UCMerced/dataset.json ]]; then
    if [[ -z "${UCM_SRC:-}" ]]; then
        echo "datasets/UCMerced is missing: set UCM_SRC to the UC Merced Images folder" >&2
        exit 2
    fi
    python data_scripts/prepare_dataset.py --src "$UCM_SRC" --dst ../datasets/UCMerced --protocol ucmerced
fi

train() {  # train SAVE FLAGS...: a new run, or the existing one continued
    local save=$1
    shift
    local resume=()
    [[ -f ../experiment/$save/model/model_latest.pt ]] && resume=(--resume)
    torchrun --standalone --nproc_per_node 1 demo_train.py "$@" --dataset=UCMerced --precision bf16 \
        --time_budget "$half" --save "$save" "${resume[@]}" "${cpu[@]}"
}

train HSENETx4_UCMerced_gpu --model=HSENET --scale=4
train CONVFORMERSRx3_UCMerced_gpu --model=CONVFORMERSR --scale=3
