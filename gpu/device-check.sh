#!/usr/bin/env bash
# Real-GPU check of mirage-gpu (design.md §6). Two phases:
#
#   1. Here (no GPU needed):       gpu/device-check.sh prepare
#      builds the release example `gpu_bench`, the release GPU test binaries and (if it
#      builds) the host binary, and puts the Vulkan loader, an ICD file for NVIDIA's headless
#      driver and the binaries into target/device/.
#   2. On the device, one call of the `device`/`run` tool:
#        command: bash gpu/device-check.sh run
#        carry:   ["target/device"]
#        timeout_s: 420 (about 5 minutes of work at the 2026-11-28 speeds; 15 min of device time per task)
#      It runs the GPU tests with MIRAGE_REQUIRE_GPU=1 on the NVIDIA adapter (postvar.rs: the
#      fused posterior variance vs core), then the throughput benchmark, whose JSON carries
#      `postvar_exact_t0` rows (extra time of the fused exact tr J at t = 0, batches ≤ 10⁴),
#      then the PyTorch CUDA peer of the same sampler (gpu/peer_cuda.py, eager and CUDA
#      graph; needs ../shared/peers/peer_torch.py at prepare time), then `mirage bench gpu
#      --json` (GPU beside the device's CPUs), and writes $OUT/adapter.txt, $OUT/tests.log,
#      $OUT/bench.json, $OUT/peer-cuda.json, $OUT/mirage-bench.json.
#   The binaries travel as one xz archive (the carried tree must stay under 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=target/device

case "${1:-}" in
prepare)
    mkdir -p "$DEV/bin"
    cargo build --release -p mirage-gpu --example gpu_bench
    cp target/release/examples/gpu_bench "$DEV/bin/"
    # Test binaries: the last line of each "Executable" report names the file.
    cargo test --release -p mirage-gpu --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/deps/' | while read -r exe; do
            cp "$exe" "$DEV/bin/test-$(basename "$exe" | sed 's/-[0-9a-f]*$//')"
        done
    if cargo build --release -p mirage-host 2>/dev/null; then
        cp target/release/mirage "$DEV/bin/"
        # plotters' font stack: not on the device image (Ubuntu 24.04 minimal); only `mirage`
        # is run with these on its library path.
        mkdir -p "$DEV/hostlibs"
        ldd target/release/mirage | awk '/fontconfig|freetype|expat|png16|brotli/ {print $3}' |
            xargs -r -I{} cp -L {} "$DEV/hostlibs/"
    fi
    cp -L "$(dpkg -L libvulkan1 | grep 'libvulkan.so.1$' | head -1)" "$DEV/libvulkan.so.1"
    echo '{"file_format_version":"1.0.1","ICD":{"library_path":"libEGL_nvidia.so.0","api_version":"1.4.312"}}' \
        > "$DEV/nvidia_icd.json"
    if [ -f ../shared/peers/peer_torch.py ]; then cp ../shared/peers/peer_torch.py "$DEV/"; fi
    strip "$DEV"/bin/* 2>/dev/null || true
    tar -C "$DEV" -cJf "$DEV/bin.tar.xz" bin && rm -rf "$DEV/bin"
    du -sh "$DEV"
    ;;
run)
    OUT="${OUT:-/tmp/mirage-device-out}"
    mkdir -p "$OUT"
    tar -C "$DEV" -xJf "$DEV/bin.tar.xz"
    export LD_LIBRARY_PATH="$PWD/$DEV:/usr/local/nvidia/lib64:/usr/local/nvidia/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export VK_ICD_FILENAMES="$PWD/$DEV/nvidia_icd.json"
    export VK_LOADER_DEBUG=error,warn
    export MIRAGE_REQUIRE_GPU=1 MIRAGE_GPU_ADAPTER="${MIRAGE_GPU_ADAPTER:-NVIDIA}"
    nvidia-smi -L > "$OUT/adapter.txt" 2>&1 || true
    status=0
    for t in "$DEV"/bin/test-*; do
        echo "== $t" >> "$OUT/tests.log"
        timeout 60 "$t" --nocapture >> "$OUT/tests.log" 2>&1 || { status=1; echo "FAILED: $t" >> "$OUT/tests.log"; }
    done
    timeout 150 "$DEV/bin/gpu_bench" 1000 1000 10000 100000 > "$OUT/bench.json" 2>> "$OUT/tests.log" || status=1
    if [ -f "$DEV/peer_torch.py" ]; then
        timeout 110 python3 gpu/peer_cuda.py --peer "$DEV/peer_torch.py" > "$OUT/peer-cuda.json" 2>> "$OUT/tests.log" || true
    fi
    if [ -x "$DEV/bin/mirage" ]; then
        LD_LIBRARY_PATH="$PWD/$DEV/hostlibs:$LD_LIBRARY_PATH" \
            timeout 80 "$DEV/bin/mirage" bench gpu --json --batches 1000,10000 \
            > "$OUT/mirage-bench.json" 2>> "$OUT/tests.log" || true
    fi
    tail -n 40 "$OUT/tests.log"; cat "$OUT/bench.json" "$OUT/peer-cuda.json" 2>/dev/null || true
    exit "$status"
    ;;
*)
    echo "usage: gpu/device-check.sh prepare|run" >&2
    exit 2
    ;;
esac
