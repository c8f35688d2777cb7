set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src
mkdir -p $OUT
nvidia-smi --query-gpu=name --format=csv,noheader
python3 benchmarks/bench_train_gpu.py --devices 1 2 --batch 512 --steps 40 2>&1 | tee $OUT/train_raw.txt | grep -E "^\| calhas|rror"
python3 benchmarks/bench_train_lightning.py --volumes 8000 --epochs 3 --devices 1 2 --batch 256 --workers 8 2>&1 | tee $OUT/train_lightning.txt | grep -E "^\| calhas|rror"
