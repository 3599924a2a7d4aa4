# Documentation check, run by `make test` (ctest: docs.links_and_methods) or by hand:
#   cmake -DROOT=/path/to/repo -P scripts/check-docs.cmake
# Fails, naming the file and the link or the method, when
#  - a relative Markdown link in README.md or docs/*.md does not resolve to an existing file or
#    folder (inline links and images `[text](target)`; http(s)/mailto links and pure #anchors are
#    skipped; a #fragment or ?query is stripped; fenced code blocks and inline code are ignored);
#  - a method of the catalogue (a row {"name", Family::... in src/methods/catalogue.cpp)
#    has no section in docs/methods.md (a Markdown heading that names it in backticks).
# Plain CMake, so it works before a build and wherever CMake is installed.
cmake_minimum_required(VERSION 3.18)

if(NOT DEFINED ROOT)
  get_filename_component(ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)

# Markdown text is full of ';', '[' and ']', which CMake lists treat specially. They are replaced
# by control characters before any text becomes a list element.
string(ASCII 1 SEMI)
string(ASCII 2 LINK)  # stands for "](" (the start of a link target)

set(errors "")
set(link_count 0)

# Removes fenced code blocks (``` or ~~~ lines) from `text`.
function(strip_fences text out)
  set(result "")
  set(rest "${text}")
  while(TRUE)
    string(REGEX MATCH "(^|\n)[ ]*(```|~~~)" open "${rest}")
    if(open STREQUAL "")
      break()
    endif()
    string(FIND "${rest}" "${open}" at)
    string(SUBSTRING "${rest}" 0 ${at} before)
    string(APPEND result "${before}\n")
    string(LENGTH "${open}" open_len)
    math(EXPR after_open "${at} + ${open_len}")
    string(SUBSTRING "${rest}" ${after_open} -1 rest)
    string(STRIP "${open}" fence)
    # the fence closes at the next line starting with the same marker
    string(FIND "${rest}" "\n${fence}" close)
    if(close EQUAL -1)  # unclosed: the rest of the file is code
      set(rest "")
      break()
    endif()
    math(EXPR after_close "${close} + 4")
    string(SUBSTRING "${rest}" ${after_close} -1 rest)
    # drop the remainder of the closing fence line
    string(FIND "${rest}" "\n" eol)
    if(eol EQUAL -1)
      set(rest "")
    else()
      string(SUBSTRING "${rest}" ${eol} -1 rest)
    endif()
  endwhile()
  string(APPEND result "${rest}")
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

# ---- Links ------------------------------------------------------------------------------------
file(GLOB doc_files "${ROOT}/docs/*.md")
list(SORT doc_files)
set(md_files "${ROOT}/README.md" ${doc_files})
foreach(md IN LISTS md_files)
  file(RELATIVE_PATH md_rel "${ROOT}" "${md}")
  if(NOT EXISTS "${md}")
    string(APPEND errors "  ${md_rel}: file is missing\n")
    continue()
  endif()
  get_filename_component(md_dir "${md}" DIRECTORY)
  file(READ "${md}" text)
  string(REPLACE ";" "${SEMI}" text "${text}")
  strip_fences("${text}" text)
  string(REGEX REPLACE "`[^`\n]*`" "" text "${text}")  # inline code
  string(REPLACE "](" "${LINK}" text "${text}")
  string(REGEX MATCHALL "${LINK}[^)\n]*\\)" targets "${text}")
  foreach(raw IN LISTS targets)
    string(LENGTH "${raw}" len)
    math(EXPR len "${len} - 2")
    string(SUBSTRING "${raw}" 1 ${len} target)  # without the marker and ')'
    string(STRIP "${target}" target)
    string(REGEX REPLACE "[ \t]+\".*$" "" target "${target}")  # [text](path "title")
    string(REGEX REPLACE "^<(.*)>$" "\\1" target "${target}")
    string(REPLACE "${SEMI}" ";" shown "${target}")
    if(target STREQUAL "" OR target MATCHES "^#" OR target MATCHES "^(https?|mailto|ftp):")
      continue()
    endif()
    string(REGEX REPLACE "[#?].*$" "" path "${target}")
    string(REPLACE "${SEMI}" ";" path "${path}")
    string(REPLACE "%20" " " path "${path}")
    math(EXPR link_count "${link_count} + 1")
    if(IS_ABSOLUTE "${path}")
      string(APPEND errors "  ${md_rel}: link '${shown}' is absolute; use a path relative to the file\n")
    elseif(NOT EXISTS "${md_dir}/${path}")
      get_filename_component(resolved "${md_dir}/${path}" ABSOLUTE)
      file(RELATIVE_PATH resolved_rel "${ROOT}" "${resolved}")
      string(APPEND errors "  ${md_rel}: broken link '${shown}' (no file or folder ${resolved_rel})\n")
    endif()
  endforeach()
endforeach()

# ---- Methods ----------------------------------------------------------------------------------
set(method_names "")
set(registry "src/methods/catalogue.cpp")
if(EXISTS "${ROOT}/${registry}")
  file(READ "${ROOT}/${registry}" code)
  # A catalogue row starts {"name", Family::...
  string(REGEX MATCHALL "{\"[^\"]+\",[ \t\n]*Family::" rows "${code}")
  foreach(row IN LISTS rows)
    string(REGEX REPLACE "^{\"([^\"]+)\".*" "\\1" name "${row}")
    list(APPEND method_names "${name}")
  endforeach()
endif()
if(method_names STREQUAL "")
  string(APPEND errors "  ${registry}: no catalogue rows ({\"name\", Family::...}) found\n")
endif()

set(methods_md "${ROOT}/docs/methods.md")
set(headings "")
if(EXISTS "${methods_md}")
  file(READ "${methods_md}" text)
  string(REPLACE ";" "${SEMI}" text "${text}")
  string(REPLACE "[" "(" text "${text}")
  string(REPLACE "]" ")" text "${text}")
  strip_fences("${text}" text)
  string(REGEX MATCHALL "(^|\n)#+[ \t][^\n]*" heading_lines "${text}")
  foreach(h IN LISTS heading_lines)
    string(APPEND headings "${h}\n")
  endforeach()
elseif(NOT method_names STREQUAL "")
  string(APPEND errors "  docs/methods.md is missing: every registered method needs a section there\n")
endif()
if(EXISTS "${methods_md}")
  foreach(name IN LISTS method_names)
    string(FIND "${headings}" "`${name}`" at)
    if(at EQUAL -1)
      string(APPEND errors
             "  docs/methods.md: method '${name}' (registered in ${registry}) has no section; "
             "add a heading that names it, e.g. '## `${name}`'\n")
    endif()
  endforeach()
endif()

list(LENGTH md_files file_count)
list(LENGTH method_names method_count)
if(NOT errors STREQUAL "")
  message(FATAL_ERROR "docs check failed:\n${errors}")
endif()
message(STATUS "docs check: ${link_count} relative links in ${file_count} files resolve; "
               "all ${method_count} registered methods have a section in docs/methods.md")
