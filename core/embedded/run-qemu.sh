#!/usr/bin/env bash
# Builds the embedded example for a Cortex-M4F, runs it under QEMU (mps2-an386) for an f32, a
# q8 and a q16 model, and checks that every printed sample and Hal score is bit-identical to
# the host running the same code (core/examples/embedded_ref.rs). Prints the footprint table
# (flash, static RAM, measured stack high-water mark) and the instructions per trajectory, and
# fails if the int8 model misses the 128 KB flash / 32 KB RAM target.
#
# The model is the paper's 2D network shape (W = E = 128, 3 tied blocks, T = 1000), trained
# briefly by `mirage train` (deterministic: seed 1234) and quantised by `mirage quantize`; the
# q8 and q16 files store only the schedule tables the paper's sampler reads
# (`--tables sampler`), the f32 file all 18. A full-table q8 file is sampled on the host too,
# to show that the table subset changes no bit.
#
# QEMU runs with -icount shift=0: its virtual clock advances 1 ns per guest instruction, so
# the binary's SysTick counts (`cost` lines, calibrated by a loop of known length) give exact
# instruction counts, and the stack high-water mark is reproducible.
# Environment: SAMPLES (default 2), QEMU_TIMEOUT seconds per run (default 100).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
samples="${SAMPLES:-2}"
qemu_timeout="${QEMU_TIMEOUT:-100}"
# Honour CARGO_TARGET_DIR (cargo puts every package's build there when it is set).
target="${CARGO_TARGET_DIR:-$root/target}"
embedded_target="${CARGO_TARGET_DIR:-$here/target}"
models="$target/embedded-models"
flash_limit=131072
ram_limit=32768
mkdir -p "$models"
cd "$root"

echo "== models (paper 2D shape) =="
cargo build -q -p mirage-host --bin mirage
cargo build -q -p mirage-core --example embedded_ref
mirage="$target/debug/mirage"
ref="$target/debug/examples/embedded_ref"
if [ ! -s "$models/f32.mrg" ]; then
    "$mirage" train grid25 --epochs 40 --n 10000 --batch 1000 --quiet --out "$models/f32.mrg"
fi
quantize() { # kind tables out
    if [ ! -s "$3" ] || [ "$3" -ot "$models/f32.mrg" ]; then
        "$mirage" quantize "$models/f32.mrg" --kind "$1" --tables "$2" --out "$3" \
            --calib-trajectories 4 --eval-trajectories 2 --stride 4
    fi
}
quantize q8 all "$models/q8-all.mrg"
for kind in q8 q16; do
    quantize "$kind" sampler "$models/$kind-sampler.mrg"
done
model_of() { [ "$1" = f32 ] && echo "$models/f32.mrg" || echo "$models/$1-sampler.mrg"; }

status=0
"$ref" "$models/q8-all.mrg" "$samples" >"$models/q8-all.host.txt"
"$ref" "$(model_of q8)" "$samples" >"$models/q8.host.txt"
if cmp -s "$models/q8-all.host.txt" "$models/q8.host.txt"; then
    echo "q8: the sampler-table file samples the same bits as the all-table file"
else
    echo "FAIL: q8 with the sampler tables differs from q8 with all tables"
    status=1
fi

table="| model | schedule tables | file bytes | flash (text+rodata+data) | static RAM (data+bss) | stack high-water | instructions / trajectory | QEMU s |"
table+=$'\n|---|---|---|---|---|---|---|---|'
for kind in f32 q8 q16; do
    model="$(model_of "$kind")"
    echo "== $kind: build for thumbv7em-none-eabihf =="
    (cd "$here" && MIRAGE_MODEL="$model" MIRAGE_SAMPLES="$samples" cargo build -q --release)
    elf="$models/mirage-embedded-$kind.elf"
    cp "$embedded_target/thumbv7em-none-eabihf/release/mirage-embedded" "$elf"
    read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -n 1)
    echo "== $kind: QEMU mps2-an386 ($samples samples, -icount shift=0) =="
    start=$(date +%s.%N)
    rc=0
    timeout "$qemu_timeout" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
        -monitor none -icount shift=0 -semihosting-config enable=on,target=native \
        -kernel "$elf" >"$models/$kind.qemu.txt" 2>&1 || rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    cat "$models/$kind.qemu.txt"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: QEMU exited with $rc for $kind"
        status=1
        continue
    fi
    [ "$kind" = q8 ] || "$ref" "$model" "$samples" >"$models/$kind.host.txt"
    if diff <(grep '^sample' "$models/$kind.qemu.txt") <(grep '^sample' "$models/$kind.host.txt"); then
        if [ "$(grep -c '^sample' "$models/$kind.host.txt")" -ne "$samples" ]; then
            echo "FAIL: $kind printed too few samples"
            status=1
        else
            echo "$kind: QEMU and host agree bit for bit on $samples samples"
        fi
    else
        echo "FAIL: $kind: QEMU and host differ"
        status=1
    fi
    stack=$(sed -n 's/^stack high-water \([0-9]*\) bytes/\1/p' "$models/$kind.qemu.txt")
    # Instructions per trajectory: mean SysTick ticks of the trajectories × instructions per
    # tick of the calibration loop.
    insns=$(awk '/^calibration/ { per_tick = $2 / $4 }
                 /^cost/ { sum += $3; n++ }
                 END { if (n && per_tick) printf "%.4g", sum / n * per_tick; else print "?" }' \
        "$models/$kind.qemu.txt")
    tables=$([ "$kind" = f32 ] && echo "all 18" || echo "sampler (5)")
    flash=$((text + data))
    table+=$'\n'"| $kind | $tables | $(stat -c %s "$model") | $flash | $((data + bss)) | ${stack:-?} | $insns | $(printf %.1f "$secs") |"
    if [ "$kind" = q8 ]; then
        if [ "$flash" -gt "$flash_limit" ] || [ "$((data + bss + ${stack:-ram_limit}))" -gt "$ram_limit" ]; then
            echo "FAIL: q8 needs $flash B flash and $((data + bss)) + ${stack:-?} B RAM (targets $flash_limit, $ram_limit)"
            status=1
        else
            echo "q8: $flash B flash ≤ $flash_limit, $((data + bss + stack)) B RAM ≤ $ram_limit"
        fi
    fi
done
echo
echo "$table"
exit "$status"
