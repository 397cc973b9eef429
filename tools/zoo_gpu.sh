#!/usr/bin/env bash
# Zoo v2 on one GPU, in one call of the device tool (about 9 minutes): fmnist-vit-p4's stage 3 from the
# staged CPU model, a second p4 seed from scratch beside it, then fmnist-vit-p2 and spectro-vit's three
# seeds (all four start from the new p4). Each run's epochs are sized from the measured seconds per step
# so that everything ends before DEADLINE; finished models come back as gzipped tars in $OUT.
# Needs .dev/fmnist (the four Fashion-MNIST .gz files) and .dev/zoo (fmnist-resnet, spectro-resnet and
# an fmnist-vit-p4 that ran stages 1-2 only, as zoo v2's CPU run did), carried. The epochs each run used
# are on its card, and recipes.py now holds them. spectro-vit's stage 2 ran in a second call:
# python -m vitnotes.train spectro-vit --seed N --start-from <its stage-1 model> (three side by side).
set -u
T0=$(date +%s)
DEADLINE=${DEADLINE:-500}
OUT=${OUT:-/tmp/zoo-gpu-out}
W=/tmp/zoo-gpu; L=$W/logs; NEW=$W/new
mkdir -p "$L" "$NEW" "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
export VITNOTES_FASHION_MNIST=$PWD/.dev/fmnist VITNOTES_ZOO=$W/zoo VITNOTES_HOME=$W/home
cp -r .dev/zoo "$W/zoo"
left() { echo $((DEADLINE - $(date +%s) + T0)); }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 tools/gpu_speed.py > "$L/speed.json" 2> "$L/speed.err" || { tail -5 "$L/speed.err"; }
cat "$L/speed.json"
# epochs: p4's stage 3 in about P4_SECONDS alone, the rest in what is left after it
read -r E4 <<< "$(python3 -c "import json;s=json.load(open('$L/speed.json'));print(max(10,min(60,int(${P4_SECONDS:-150}/(117*s['p4_512']*1.4)))))")"
echo "p4 stage 3: $E4 epochs ($(left) s left)"
T="python3 -m vitnotes.train --threads 3"
$T fmnist-vit-p4 --start-from "$W/zoo/fmnist-vit-p4" --epochs "$E4" --out "$NEW/fmnist-vit-p4" > "$L/p4.log" 2>&1 &
A=$!
$T fmnist-vit-p4 --seed 1 --epochs "$E4" --out "$NEW/fmnist-vit-p4-s1" > "$L/p4-s1.log" 2>&1 &
B=$!
while kill -0 $A 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 2; done
tail -3 "$L/p4.log"
if [ ! -f "$NEW/fmnist-vit-p4/card.json" ]; then  # fail fast: the rest starts from this model
  kill $B; echo "p4 failed:"; tail -30 "$L/p4.log"; tail -30 "$L/p4-s1.log"; exit 1
fi
if true; then
  rm -rf "$W/zoo/fmnist-vit-p4" && cp -r "$NEW/fmnist-vit-p4" "$W/zoo/fmnist-vit-p4"
  read -r E2 ES <<< "$(python3 -c "
import json;s=json.load(open('$L/speed.json'));t=$(left)-70
print(max(2,min(12,int(t/(468*s['p2_128']*2.0)))), max(10,min(40,int(t/(250*s['sv_32']*3.0)))))")"
  echo "p2: $E2 epochs, spectro-vit: $ES epochs ($(left) s left)"
  $T fmnist-vit-p2 --epochs "$E2" --out "$NEW/fmnist-vit-p2" > "$L/p2.log" 2>&1 &
  for s in 0 1 2; do
    n=spectro-vit; [ $s -gt 0 ] && n=spectro-vit-s$s
    $T spectro-vit --seed $s --epochs "$ES" --out "$NEW/$n" > "$L/$n.log" 2>&1 &
  done
fi
while [ -n "$(jobs -r)" ] && [ "$(left)" -gt 25 ]; do sleep 2; done
jobs -r; kill $(jobs -p) 2>/dev/null; sleep 1
for d in "$NEW"/*/; do
  n=$(basename "$d")
  [ -f "$d/card.json" ] && tar -C "$NEW" -czf "$OUT/$n.tgz" --exclude '.*' "$n" && echo "packed $n"
done
for f in "$L"/*.log; do echo "== $f"; grep -v "step .*/.* epoch" "$f" | tail -12; done
tar -C "$W" -czf "$OUT/logs.tgz" logs
echo "done at $(( $(date +%s) - T0 )) s"
