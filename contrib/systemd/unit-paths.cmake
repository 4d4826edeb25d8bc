# Fills in the paths of volt-broker.service from an install prefix. Used
# twice: at configure time (the unit that ctest systemd-units verifies) and
# at install time, so that `cmake --install --prefix P` writes P's paths,
# not the ones of the prefix the tree was configured with.
#
# In: VOLT_UNIT_PREFIX, VOLT_UNIT_BINDIR_REL and VOLT_UNIT_SYSCONFDIR_REL
# (each relative to the prefix, or absolute), VOLT_UNIT_SRC, VOLT_UNIT_OUT.
# Out: VOLT_UNIT_BINDIR, VOLT_UNIT_CONFDIR (where broker.json lives).

# The same rule as GNUInstallDirs' FULL_SYSCONFDIR: a system prefix keeps
# its configuration in /etc, any other in PREFIX/etc.
function(volt_unit_full_dir out rel prefix is_sysconf)
  if(IS_ABSOLUTE "${rel}")
    set(full "${rel}")
  elseif(is_sysconf AND (prefix STREQUAL "/" OR prefix STREQUAL "/usr"))
    set(full "/${rel}")
  elseif(prefix STREQUAL "/")
    set(full "/${rel}")
  else()
    set(full "${prefix}/${rel}")
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

string(REGEX REPLACE "/+$" "" _prefix "${VOLT_UNIT_PREFIX}")
if(_prefix STREQUAL "")
  set(_prefix "/")
endif()
volt_unit_full_dir(VOLT_UNIT_BINDIR "${VOLT_UNIT_BINDIR_REL}" "${_prefix}" OFF)
volt_unit_full_dir(_sysconf "${VOLT_UNIT_SYSCONFDIR_REL}" "${_prefix}" ON)
set(VOLT_UNIT_CONFDIR "${_sysconf}/volt")
configure_file("${VOLT_UNIT_SRC}" "${VOLT_UNIT_OUT}" @ONLY)
