#!/usr/bin/env bash
# Builds the embedded example for a Cortex-M4F, runs it under QEMU (mps2-an386) for an f32, a
# q8 and a q16 model, and checks that every printed sample and Hal score is bit-identical to
# the host running the same code (core/examples/embedded_ref.rs). Prints the footprint table
# (flash, static RAM, measured stack high-water mark).
#
# The model is the paper's 2D network shape (W = E = 128, 3 tied blocks, T = 1000), trained
# briefly by `mirage train` (deterministic: seed 1234) and quantised by `mirage quantize`.
# Environment: SAMPLES (default 2), QEMU_TIMEOUT seconds per run (default 100).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
samples="${SAMPLES:-2}"
qemu_timeout="${QEMU_TIMEOUT:-100}"
models="$root/target/embedded-models"
mkdir -p "$models"
cd "$root"

echo "== models (paper 2D shape) =="
cargo build -q -p mirage-host --bin mirage
cargo build -q -p mirage-core --example embedded_ref
mirage="$root/target/debug/mirage"
ref="$root/target/debug/examples/embedded_ref"
if [ ! -s "$models/f32.mrg" ]; then
    "$mirage" train grid25 --epochs 40 --n 10000 --batch 1000 --quiet --out "$models/f32.mrg"
fi
for kind in q8 q16; do
    if [ ! -s "$models/$kind.mrg" ] || [ "$models/$kind.mrg" -ot "$models/f32.mrg" ]; then
        "$mirage" quantize "$models/f32.mrg" --kind "$kind" --out "$models/$kind.mrg" \
            --calib-trajectories 4 --eval-trajectories 2 --stride 4
    fi
done

status=0
table="| model | file bytes | flash (text+rodata+data) | static RAM (data+bss) | stack high-water | QEMU s |"
table+=$'\n|---|---|---|---|---|---|'
for kind in f32 q8 q16; do
    model="$models/$kind.mrg"
    echo "== $kind: build for thumbv7em-none-eabihf =="
    (cd "$here" && MIRAGE_MODEL="$model" MIRAGE_SAMPLES="$samples" cargo build -q --release)
    elf="$models/mirage-embedded-$kind.elf"
    cp "$here/target/thumbv7em-none-eabihf/release/mirage-embedded" "$elf"
    read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -n 1)
    echo "== $kind: QEMU mps2-an386 ($samples samples) =="
    start=$(date +%s.%N)
    rc=0
    timeout "$qemu_timeout" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
        -semihosting-config enable=on,target=native -kernel "$elf" >"$models/$kind.qemu.txt" 2>&1 || rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    cat "$models/$kind.qemu.txt"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: QEMU exited with $rc for $kind"
        status=1
        continue
    fi
    "$ref" "$model" "$samples" >"$models/$kind.host.txt"
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
    table+=$'\n'"| $kind | $(stat -c %s "$model") | $((text + data)) | $((data + bss)) | ${stack:-?} | $(printf %.1f "$secs") |"
done
echo
echo "$table"
exit "$status"
