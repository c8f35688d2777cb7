set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src
mkdir -p $OUT
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_model_calhas2022.py 2>&1 | tail -3
python3 benchmarks/bench_train_gpu.py --devices 1 --batch 512 --steps 40 | tee $OUT/train_raw_h100.txt | grep -E "^\| calhas"
python3 benchmarks/bench_train_gpu.py --devices 1 --batch 512 --steps 40 --no-prefetch | tee $OUT/train_noprefetch_h100.txt | grep -E "^\| calhas"
python3 benchmarks/bench_train_gpu.py --devices 1 --batch 512 --steps 40 --compile 2>&1 | tee $OUT/train_compile_h100.txt | grep -E "^\| calhas"
python3 benchmarks/bench_train_lightning.py --volumes 8000 --epochs 3 --devices 1 --batch 256 --workers 8 2>&1 | tee $OUT/train_lightning_h100.txt | grep -E "^\| calhas|rror"
