#!/bin/sh
# Remove what an image never runs, during its build (see the Dockerfile).
#   trim.sh VENV       the packages' test suites, build-time files and debugging symbols in the
#                      virtual environment
#   trim.sh --system   the base's documentation, locales, package lists and caches, and the parts
#                      of the interpreter a service never imports (IDLE, Tk, venv's bundled pip)
set -eu

if [ "${1:-}" = "--system" ]; then
  rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
    /usr/share/lintian /usr/share/python-wheels /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old \
    /var/log/* /root/.cache /tmp/* 2>/dev/null || true
  stdlib="$(python3.11 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
  for part in ensurepip idlelib lib2to3 pydoc_data tkinter turtledemo test; do
    rm -rf "${stdlib:?}/${part}"
  done
  # The base interpreter's own installers: the image runs its virtual environment's packages.
  for site in /usr/local/lib/python3.11/site-packages /usr/lib/python3/dist-packages; do
    [ -d "$site" ] && find "$site" -mindepth 1 -maxdepth 1 \
      \( -name 'pip*' -o -name 'setuptools*' -o -name 'wheel*' -o -name 'pkg_resources' \
         -o -name '_distutils_hack' -o -name 'distutils-precedence.pth' \) -exec rm -rf {} +
  done
  rm -f /usr/local/bin/pip* /usr/bin/pip*
  exit 0
fi

venv="${1:?usage: trim.sh VENV | --system}"
site="$venv/lib/python3.11/site-packages"
# Test suites are never imported by the code that ships them.
find "$site" -depth -type d -name tests -prune -exec rm -rf {} +
rm -rf "$site/onnx/backend/test"
# onnxruntime's model-conversion and profiling tools: serving only runs sessions.
rm -rf "$site/onnxruntime/transformers" "$site/onnxruntime/quantization" \
  "$site/onnxruntime/tools" "$site/onnxruntime/datasets"
# Debugging symbols of the extension modules; the dynamic symbols stay. Not the libraries the
# wheels vendor in `<package>.libs/`: their headers were rewritten by patchelf, and a stripped
# copy no longer loads ("ELF load command address/offset not page-aligned").
if command -v strip >/dev/null; then
  find "$site" -type f -name '*.so*' ! -path '*.libs/*' -exec strip --strip-unneeded {} +
fi
# Sources and headers for building extensions, not for running them.
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' \
  -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) -delete
