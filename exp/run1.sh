set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src
python3 exp/prof_calhas.py 512 2>&1 | sed -n '1,2p;/Name/,+22p' | cut -c1-100,200-260
for a in "" "--no-prefetch" "--compile"; do python3 benchmarks/bench_train_gpu.py --devices 1 --batch 512 --steps 40 $a 2>&1 | grep -E "^\| calhas|Error|error" ; done
