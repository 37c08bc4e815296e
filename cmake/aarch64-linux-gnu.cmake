# CMake toolchain file: cross-compile for linux-arm64 with Debian's
# g++-aarch64-linux-gnu (scripts/prebuild.js uses it for
# prebuilds/linux-arm64). libevent comes from the private sysroot that
# scripts/prebuild-libevent.sh makes (PKG_CONFIG_LIBDIR, set by prebuild.js);
# other arm64 headers (libssl-dev:arm64) come from Debian's multiarch paths.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# never pick up the build machine's (x86_64) libraries
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
