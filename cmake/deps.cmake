# Every dependency is a Debian package; a missing one stops the build with
# the package's name so the operator knows what to install.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install -y pkg-config")
endif()
find_package(Threads REQUIRED)

set(SMG_DEP_LIBS)
macro(smg_require prefix module debpkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install -y ${debpkg}")
  endif()
  list(APPEND SMG_DEP_LIBS PkgConfig::${prefix})
endmacro()

smg_require(SODIUM libsodium libsodium-dev)
smg_require(URING liburing liburing-dev)
smg_require(PROTOBUFC libprotobuf-c libprotobuf-c-dev)
smg_require(TSS2 tss2-esys libtss2-dev)
smg_require(TSS2TCTI tss2-tctildr libtss2-dev)
smg_require(TSS2MU tss2-mu libtss2-dev)
smg_require(TSS2RC tss2-rc libtss2-dev)
smg_require(CRYPTO libcrypto libssl-dev)
smg_require(SYSTEMD libsystemd libsystemd-dev)

find_program(PROTOC_C NAMES protoc-c protoc-gen-c)
if(NOT PROTOC_C)
  message(FATAL_ERROR "protoc-c not found: apt-get install -y protobuf-c-compiler")
endif()

# The xen backend is optional for a user's build; setup installs libxen-dev
# so CI always builds it.
set(SMG_HAVE_XEN OFF)
set(SMG_XEN_VERSION "")
if(SMG_WITH_XEN)
  pkg_check_modules(XEN QUIET IMPORTED_TARGET
    xencontrol xenguest xenforeignmemory xenstore xenlight xentoollog)
  if(XEN_FOUND)
    set(SMG_HAVE_XEN ON)
    set(SMG_XEN_VERSION "${XEN_xencontrol_VERSION}")
    list(APPEND SMG_DEP_LIBS PkgConfig::XEN)
  else()
    message(STATUS "libxen-dev not found: the xen backend is left out")
  endif()
endif()
