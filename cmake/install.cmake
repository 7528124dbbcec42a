# Install layout (FHS, GNUInstallDirs) and the Debian package (CPack DEB).
#   cmake --install BUILD [--prefix /usr]     # the default prefix is /usr
#   cd BUILD && cpack -G DEB                  # secmig_VERSION_ARCH.deb
# docs/operating.md describes what goes where.
include(GNUInstallDirs)

# A system service's units name the binary by its absolute path, so the
# configured FULL_* directories go into them.
set(SMG_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(SMG_SYSCONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR})

# Where systemd and bash-completion look on this system (Debian 12:
# /lib/systemd/system, /usr/share/bash-completion/completions).
pkg_get_variable(SMG_UNITDIR systemd systemdsystemunitdir)
if(NOT SMG_UNITDIR)
  set(SMG_UNITDIR /lib/systemd/system)
endif()
pkg_get_variable(SMG_COMPLETIONDIR bash-completion completionsdir)
if(NOT SMG_COMPLETIONDIR)
  set(SMG_COMPLETIONDIR ${CMAKE_INSTALL_FULL_DATADIR}/bash-completion/completions)
endif()

install(TARGETS secmig RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

file(GLOB SMG_UNITS_IN CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/dist/systemd/*.in)
set(SMG_UNITS)
foreach(u ${SMG_UNITS_IN})
  get_filename_component(n ${u} NAME)
  string(REGEX REPLACE "\\.in$" "" n ${n})
  configure_file(${u} ${CMAKE_BINARY_DIR}/dist/systemd/${n} @ONLY)
  list(APPEND SMG_UNITS ${CMAKE_BINARY_DIR}/dist/systemd/${n})
endforeach()
install(FILES ${SMG_UNITS} DESTINATION ${SMG_UNITDIR})

install(FILES ${CMAKE_SOURCE_DIR}/dist/completion/secmig
        DESTINATION ${SMG_COMPLETIONDIR})
install(FILES ${CMAKE_SOURCE_DIR}/dist/etc/policy ${CMAKE_SOURCE_DIR}/dist/etc/peers
              ${CMAKE_SOURCE_DIR}/dist/etc/hostdefs
              ${CMAKE_SOURCE_DIR}/dist/etc/secmig.conf
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/secmig)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/operating.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- man pages: man/NAME.SECTION.scd -> NAME.SECTION.gz with scdoc ------
find_program(SCDOC scdoc)
file(GLOB SMG_MAN_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/man/*.scd)
if(SCDOC)
  set(SMG_MAN_OUT)
  foreach(src ${SMG_MAN_SRC})
    get_filename_component(page ${src} NAME)
    string(REGEX REPLACE "\\.scd$" "" page ${page})
    string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" section ${page})
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(
      OUTPUT ${out} ${out}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "\"$0\" < \"$1\" > \"$2\" && gzip -9n < \"$2\" > \"$2.gz\""
              ${SCDOC} ${src} ${out}
      DEPENDS ${src}
      COMMENT "scdoc ${page}"
      VERBATIM)
    list(APPEND SMG_MAN_OUT ${out})
    install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${SMG_MAN_OUT})
else()
  message(STATUS "scdoc not found: no man pages (apt-get install -y scdoc)")
endif()

# ---- the Debian package ---------------------------------------------------
set(CPACK_PACKAGE_NAME secmig)
set(CPACK_PACKAGE_VENDOR secmig)
set(CPACK_PACKAGE_CONTACT "secmig maintainers <maintainers@secmig.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "secure live migration of virtual machines")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "secmig migrates running VMs between hosts over mutually authenticated,\n"
  "encrypted channels, optionally bound to each host's TPM, with pre-copy\n"
  "memory and live disk migration. It ships the receiver, the sim host and\n"
  "the disk service as systemd units.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: what the binary links, from dpkg-shlibdeps (libsodium23,
# libtss2-*, libprotobuf-c1, libssl3, libsystemd0, the Xen libraries when the
# xen backend is built in: -DSMG_WITH_XEN=OFF builds a package without them).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Programs secmig runs: swtpm for guest vTPMs (sim host), ip(8) for a VM's
# NIC identity. tpm2-tools only help an operator inspect the TPM.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "swtpm, iproute2")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "tpm2-tools")
configure_file(${CMAKE_SOURCE_DIR}/dist/deb/conffiles.in
               ${CMAKE_BINARY_DIR}/dist/deb/conffiles @ONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_BINARY_DIR}/dist/deb/conffiles
  ${CMAKE_SOURCE_DIR}/dist/deb/postinst
  ${CMAKE_SOURCE_DIR}/dist/deb/prerm
  ${CMAKE_SOURCE_DIR}/dist/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_GENERATOR DEB)
include(CPack)
