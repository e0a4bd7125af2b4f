#!/bin/sh
# run.sh: the cuda backend's kernels on the CPU, through test-cuda-parity.
#
#   tests/cuda/sim/run.sh [--device-check] [BUILD_DIR]   (after make; default: .)
#
# With --device-check it runs tests/cuda/device-check.sh on the simulator
# instead (its parity groups limited to ops unless CRIA_PARITY_GROUPS says
# otherwise), to check that script where no GPU is.
#
# Builds the cuda plugin again from the same sources (every .c and .cu of
# plugins/backends/cuda) against this directory's stand-ins for the CUDA
# runtime and cuBLASLt, with every kernel<<<...>>> launch rewritten into a call that
# runs the grid on host threads (cuda-sim.cc), then runs test-cuda-parity
# against it. A check of the kernels' logic where no GPU is: it says
# nothing about the real compiler, hardware or cuBLASLt; device-check.sh on
# a GPU is the real test. Needs g++ (C++20). Not part of make check: one
# thread per simulated GPU thread is slow (a few minutes).
set -eu
device_check=
if [ "${1:-}" = --device-check ]; then
  device_check=1
  shift
fi
build=$(cd "${1:-.}" && pwd)
src=$(cd "$(dirname "$0")/../../.." && pwd)
sim=$src/tests/cuda/sim
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags="-DHAVE_CONFIG_H -I$src/plugins/backends/cuda -I$build -I$src -I$src/sdk -I$build/sdk -I$sim -fPIC -O1 -g $(pkg-config --cflags glib-2.0 gmodule-2.0 json-glib-1.0)"
# the launches: name<<<grid, block, shared, stream>>> (args) -> SIM_LAUNCH (name, grid, ...) (args)
objs=
for f in "$src"/plugins/backends/cuda/*.cu; do
  b=$(basename "$f" .cu)
  sed -e 's/\([A-Za-z_][A-Za-z0-9_]*\)<<<\(.*\)>>>/SIM_LAUNCH (\1, \2)/' "$f" > "$out/$b.cc"
  if grep -n '<<<' "$out/$b.cc"; then
    echo "run.sh: a launch in $b.cu spans lines: the sed above cannot rewrite it" >&2
    exit 1
  fi
  g++ -std=c++20 $flags -fvisibility=hidden -c "$out/$b.cc" -o "$out/$b.o"
  objs="$objs $out/$b.o"
done
for f in "$src"/plugins/backends/cuda/*.c; do
  b=$(basename "$f" .c)
  gcc -std=gnu11 $flags -fvisibility=hidden -DCRIA_CUDA_LIBDIR="\"$out\"" -c "$f" -o "$out/$b.o"
  objs="$objs $out/$b.o"
done
g++ -std=c++20 $flags -c "$sim/cuda-sim.cc" -o "$out/cuda-sim.o"
gcc -std=gnu11 -I"$sim" -fPIC -O1 -shared "$sim/cublaslt-sim.c" -o "$out/libcublasLt.so.13"
mkdir "$out/plugins"
g++ -shared -o "$out/plugins/cria-cuda.so" $objs "$out/cuda-sim.o" \
  "$build/core/.libs/libcria-1.0.so" $(pkg-config --libs glib-2.0 gmodule-2.0 json-glib-1.0) -ldl -pthread
# every other plugin of the build beside the simulated cuda
for p in "$build"/plugins/.libs/cria-*.so; do
  case $p in */cria-cuda.so) ;; *) ln -s "$p" "$out/plugins/" ;; esac
done
cd "$build"
make -s tests/cuda/test-cuda-parity >/dev/null
if [ -n "$device_check" ]; then
  LD_LIBRARY_PATH=$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} CRIA_DEVICE_CHECK_PLUGINS=$out/plugins \
    CRIA_PARITY_GROUPS=${CRIA_PARITY_GROUPS:-ops} "$src/tests/cuda/device-check.sh" "$build"
  exit
fi
CRIA_TEST_PLUGINS=$out/plugins CRIA_SRCDIR=$src CRIA_BUILDDIR=$build CRIA_BIN=$build/cria \
  CRIA_PLUGIN_SCANNER=$build/.libs/cria-plugin-scanner CRIA_MODULE_DIR=$build/core/modules/.libs \
  CRIA_DATA_DIR=$src/share CRIA_PLUGIN_PATH= XDG_CACHE_HOME=$out/cache XDG_DATA_HOME=$out/data \
  LD_LIBRARY_PATH=$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} CRIA_PARITY_BACKEND=cuda ./tests/cuda/test-cuda-parity
