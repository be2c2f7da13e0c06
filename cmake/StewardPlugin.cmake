# sw_add_plugin(<name> SOURCES <files...> [LIBS <pkg-config targets...>])
#
# Builds plugins/<name> into swp_<name>.so. The plugin sees core/include/steward only and
# links with --no-undefined, so touching a core internal fails the link (Fluent Bit's
# FLB_PLUGIN plays the same role). Each plugin gets an SW_PLUGIN_<NAME> option.
function(sw_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "SOURCES;LIBS" ${ARGN})
  string(TOUPPER "${name}" upper)
  option(SW_PLUGIN_${upper} "Build the ${name} plugin" ON)
  if(NOT SW_PLUGIN_${upper})
    return()
  endif()
  set(target "swp_${name}")
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "swp_${name}"
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY "${SW_PLUGIN_OUTPUT_DIR}")
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIR}")
  endif()
  target_include_directories(${target} PRIVATE "${CMAKE_SOURCE_DIR}/core/include")
  if(NOT SW_SANITIZE)
    # Sanitizer runtimes are resolved from the host executable, so only plain builds
    # can insist that every symbol is defined by the plugin or libc.
    target_link_options(${target} PRIVATE "-Wl,--no-undefined")
  endif()
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} m)
  if(NOT ARG_OUTPUT_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/steward/plugins)
  endif()
  add_dependencies(steward_plugins ${target})
endfunction()
